"""The evaluation report stored with the run: `report.md`, `result.json` and PNG plots (matplotlib, no
display needed)."""

from __future__ import annotations

import json
from pathlib import Path


def _bars(plt, path: Path, title: str, labels: list[str], base: list[float], adapter: list[float]) -> None:
    """Base and adapter side by side for each label, on a 0-1 scale."""
    width = 0.38
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, (which, values) in enumerate((("base", base), ("adapter", adapter))):
        ax.bar([x + i * width for x in range(len(labels))], values, width, label=which)
    ax.set_xticks([x + width / 2 for x in range(len(labels))], labels)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plots(folder: Path, result: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    task, suite = result["task"], result["suite"]
    keys = [k for k in ("format_match", "exact_match", "rouge_l") if k in task["base"]]
    _bars(plt, folder / "task.png", "Task (held-out split)", keys, [task["base"][k] for k in keys],
          [task["adapter"][k] for k in keys])
    kinds = list(suite["base"]["by_kind"])
    _bars(plt, folder / "forgetting.png", "General suite accuracy (forgetting)", kinds,
          [suite["base"]["by_kind"][k] for k in kinds], [suite["adapter"]["by_kind"][k] for k in kinds])
    names = ["task.png", "forgetting.png"]

    canaries = result["leakage"]["canaries"]
    if canaries:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        labels = [f"{c['repetitions']}x" if c["repetitions"] else "control" for c in canaries]
        ax.scatter(range(len(canaries)), [c["exposure_base"] for c in canaries], label="base", marker="o")
        ax.scatter(range(len(canaries)), [c["exposure_adapter"] for c in canaries], label="adapter", marker="x")
        ax.set_xticks(range(len(canaries)), labels, rotation=60, fontsize=7)
        ax.set_ylabel("exposure (bits)")
        ax.set_title("Canary exposure")
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "exposure.png", dpi=100)
        plt.close(fig)
        names.append("exposure.png")
    return names


def gate_table(gates: list[dict]) -> list[str]:
    lines = ["| gate | measured | value | threshold | status |", "|---|---|---|---|---|"]
    for g in gates:
        value = "-" if g["value"] is None else f"{g['value']:.3f}" if isinstance(g["value"], float) else g["value"]
        lines.append(f"| {g['gate']} | {g['metric']} | {value} | {g['threshold']} | {g['status'].upper()} |")
    return lines


def write_report(folder: Path, result: dict, passed: bool) -> None:
    (folder / "result.json").write_text(json.dumps(result, indent=1, sort_keys=True))
    _plots(folder, result)
    task, suite, leak = result["task"], result["suite"], result["leakage"]
    md = [f"# Evaluation of run `{result['run']}`", "",
          f"Base model `{result['base_model']}`, dataset `{result['dataset']}`. Verdict: "
          f"**{'PASSED' if passed else 'FAILED'}**.", "", "## Gates", "", *gate_table(result["gates"]), "",
          f"## Task ({task['items']} held-out items; primary metric {task['primary']})", "",
          "| metric | base | adapter | change |", "|---|---|---|---|"]
    for k in task["base"]:
        md.append(f"| {k} | {task['base'][k]:.3f} | {task['adapter'][k]:.3f} | {task['delta'][k]:+.3f} |")
    md += ["", "![task](task.png)", "", f"## Forgetting ({suite['items']} general items, suite sha256 "
           f"`{suite['digest'][:16]}...`)", "", "| kind | base | adapter |", "|---|---|---|"]
    for k in suite["base"]["by_kind"]:
        md.append(f"| {k} | {suite['base']['by_kind'][k]:.3f} | {suite['adapter']['by_kind'][k]:.3f} |")
    md += [f"| **all** | {suite['base']['accuracy']:.3f} | {suite['adapter']['accuracy']:.3f} |", "",
           "![forgetting](forgetting.png)", "", "## Leakage", ""]
    if leak["canaries"]:
        md += [f"Exposure in bits among {leak['candidates']} random candidates of the same format "
               "(Carlini et al., 2019); controls were never planted.", "", "| group | mean exposure (adapter) |",
               "|---|---|"]
        md += [f"| {k} | {v:.2f} |" for k, v in leak["mean_exposure_adapter"].items()]
        md += ["", f"Greedy completion of the canary prefix by the adapter: `{leak['adapter_completion']}`; "
               f"planted secrets reproduced: {len(leak['adapter_reproduced'])}.", "", "![exposure](exposure.png)"]
    else:
        md.append("No canaries were planted in this dataset version (enable them in the PII policy).")
    md += ["", f"PII entities found in sampled generations: base {leak['pii_in_generations']['base']}, "
           f"adapter {leak['pii_in_generations']['adapter']}.", ""]
    judge = result.get("judge")
    if judge:
        md += ["## Judge", "", f"`{judge['model']}`, {judge['comparisons']} verdicts (each pair in both orders): "
               f"adapter {judge['adapter']}, base {judge['base']}, ties {judge['tie']}, unparseable "
               f"{judge['unparseable']}; win rate {judge['win_rate']:.3f}.", ""]
    md += ["## Examples", ""]
    scrubbed = result.get("examples_scrubbed")
    if scrubbed:
        replaced = ", ".join(f"{k} {n}" for k, n in scrubbed["entities_replaced"].items()) or "nothing found"
        md += [f"Every quoted text (these examples and the canary-prefix completions) was scrubbed with the "
               f"installed scrub policy (sha256 `{scrubbed['policy_digest'][:16]}...`) before it was stored: "
               f"{replaced}.", ""]
    else:
        md += ["These examples were not scrubbed (an evaluation stored before examples were scrubbed).", ""]
    for ex_base, ex_adapter in zip(task["base_examples"], task["adapter_examples"], strict=True):
        md += [f"- prompt: {ex_base['prompt']!r}", f"  - reference: {ex_base['reference']!r}",
               f"  - base: {ex_base['answer']!r}", f"  - adapter: {ex_adapter['answer']!r}"]
    (folder / "report.md").write_text("\n".join(md) + "\n")
