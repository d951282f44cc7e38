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


def test_a_run_of_some_sections_replaces_only_those(monkeypatch):
    from tests.bench.harness import Report, render_markdown

    monkeypatch.delenv("BENCH_SCALE", raising=False)
    report = Report()
    for name, value in (("catalog", 1.0), ("backstage", 2.0)):
        report.section = name
        report.add(f"{name} figure", value, "s", target="< 3 s", ok=True)
    report.sections.append(("backstage", "side by side table"))
    old = merge_markdown("", render_markdown(report, ["backstage", "catalog", "jobs"]))
    assert old.count("## Catalog (`make bench ARGS=catalog`)") == 1
    assert "ARGS=jobs" not in old  # nothing measured: no section
    assert old.index("side by side table") < old.index("backstage figure")
    hand = old.replace("# Backline benchmarks", "# Backline benchmarks\n\nIntro by hand.")
    report = Report()
    report.section = "catalog"
    report.add("catalog figure", 9.0, "s", target="< 3 s", ok=False)
    md = merge_markdown(hand, render_markdown(report, ["catalog"]))
    assert "Intro by hand." in md and "backstage figure" in md and "side by side table" in md
    assert "| catalog figure | 9 s |" in md and "| catalog figure | 1 s |" not in md
    assert md.index("ARGS=backstage") < md.index("ARGS=catalog")  # kept in place


def test_a_run_where_every_section_was_skipped_keeps_the_file(monkeypatch):
    from tests.bench.harness import Report, render_markdown

    monkeypatch.delenv("BENCH_SCALE", raising=False)
    old = "# Backline benchmarks\n\n## Catalog (`make bench ARGS=catalog`)\n\nfigures\n"
    md = merge_markdown(old, render_markdown(Report(), ["backstage_compare"]))
    assert "figures" in md and "ARGS=catalog" in md
