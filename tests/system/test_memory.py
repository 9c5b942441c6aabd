"""system/memory.py: the memory left under a cgroup limit."""

from mlcv_cli.system import memory


def test_cgroup_limit_is_read_from_v2_else_v1_with_page_cache_given_back(tmp_path, monkeypatch):
    v2, v1 = tmp_path / "v2", tmp_path / "v1"
    v2.mkdir()
    v1.mkdir()
    monkeypatch.setattr(memory, "_CGROUPS", ((str(v2), "memory.max", "memory.current"),
                                             (str(v1), "memory.limit_in_bytes", "memory.usage_in_bytes")))
    assert memory._cgroup_left() is None  # no controller files: no limit
    (v1 / "memory.limit_in_bytes").write_text("1000\n")
    (v1 / "memory.usage_in_bytes").write_text("600\n")
    (v1 / "memory.stat").write_text("cache 7\ntotal_inactive_file 100\n")
    assert memory._cgroup_left() == 1000 - 600 + 100
    (v2 / "memory.max").write_text("max\n")  # v2 without a limit: v1's decides
    (v2 / "memory.current").write_text("10\n")
    assert memory._cgroup_left() == 500
    (v2 / "memory.max").write_text("2000\n")
    (v2 / "memory.stat").write_text("inactive_file 30\n")
    assert memory._cgroup_left() == 2000 - 10 + 30
    (v1 / "memory.limit_in_bytes").write_text(f"{2**63 - 4096}\n")  # v1's "no limit"
    (v2 / "memory.max").write_text("max\n")
    assert memory._cgroup_left() is None
