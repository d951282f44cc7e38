"""BENCHMARKS.md keeps the last default-scale run and the last run at each other scale."""

from tests.bench.harness import merge_markdown


def test_each_scale_replaces_only_its_own_section(monkeypatch):
    monkeypatch.delenv("BENCH_SCALE", raising=False)
    old_default = "# Backline benchmarks\n\nold run\n"
    monkeypatch.setenv("BENCH_SCALE", "100000")
    md = merge_markdown(old_default, "## Large catalog run\n\n100k run 1\n")
    assert md.index("old run") < md.index("100k run 1")  # a file without sections is kept
    md = merge_markdown(md, "## Large catalog run\n\n100k run 2\n")
    assert "100k run 1" not in md and "100k run 2" in md and "old run" in md
    monkeypatch.delenv("BENCH_SCALE")
    md = merge_markdown(md, "# Backline benchmarks\n\nnew run\n")
    assert "old run" not in md and md.index("new run") < md.index("100k run 2")
    monkeypatch.setenv("BENCH_SCALE", "50000")
    md = merge_markdown(md, "## Large catalog run\n\n50k run\n")
    assert md.index("new run") < md.index("50k run") < md.index("100k run 2")
