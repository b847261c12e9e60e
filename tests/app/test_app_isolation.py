"""Regression: an AppTest must not break later `multiprocessing` spawns in the same test session.

AppTest leaves its script as ``sys.modules["__main__"]``; spawned children re-run ``__main__`` and
died at start-up (the worker's job child, the parallel val twin, and a process pool that then
respawned forever). tests/conftest.py restores ``__main__`` after every test; these two tests run
in this order and fail without it.
"""

from __future__ import annotations

import multiprocessing as mp

from streamlit.testing.v1 import AppTest


def _script(value: int) -> None:
    import streamlit as st

    st.markdown(f"value {value}")


def test_an_apptest_built_from_a_function_runs():
    at = AppTest.from_function(_script, args=(7,), default_timeout=30).run()
    assert not at.exception
    assert at.markdown[0].value == "value 7"


def test_a_spawned_child_starts_after_an_apptest():
    proc = mp.get_context("spawn").Process(target=abs, args=(-1,))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 0
