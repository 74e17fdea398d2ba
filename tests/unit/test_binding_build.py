"""The llama-cpp-python binding is a portable build, on this machine and in every bundle.

A build tuned to the build machine (GGML_NATIVE) turns on ggml's AVX-512 and AMX kernels where that CPU has them:
the AMX kernels crash every chat, and the wheel would not run on hardware without them. pip reuses a wheel it
built from the same sdist whatever CMAKE_ARGS were, so the install and the bundle keep a wheel cache of their own.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from appliance import bundle

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def test_the_installed_binding_carries_no_kernels_tuned_to_the_build_machine():
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode()
    assert "AVX2 = 1" in info, info  # the portable x86-64 baseline is there
    for feature in ("AMX_INT8", "AVX512", "AVX512_VNNI"):
        assert f"{feature} = 1" not in info, f"{feature} compiled in: {info}"


def test_install_and_bundle_build_the_binding_alike_in_a_cache_keyed_by_the_options(monkeypatch, tmp_path):
    makefile = (REPO / "Makefile").read_text()
    args = re.search(r"^BINDING_CMAKE_ARGS := (.+)$", makefile, re.M).group(1).strip()
    assert args == bundle.BINDING_CMAKE_ARGS == "-DGGML_NATIVE=OFF"
    assert "PIP_CACHE_DIR=\"$(PIP_BUILD_CACHE)\"" in makefile and "pip-$(shell printf '%s'" in makefile
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    digest = hashlib.sha256(args.encode()).hexdigest()[:12]
    assert bundle._pip_build_cache() == tmp_path / "appliance" / f"pip-{digest}"
