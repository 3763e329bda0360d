"""Tests of bench/run.py's report logic: steal accounting and same-round
ratios. Run with `python3 -m unittest bench/test_run.py` (the Rust test
crates/pyzor-bench/tests/run_py.rs does, so CI runs them)."""

import importlib.util
import os
import unittest

_spec = importlib.util.spec_from_file_location("run", os.path.join(os.path.dirname(__file__), "run.py"))
run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run)


def rec(rnd, config, rps, steal=0.0, load="check w64"):
    return {"round": rnd, "config": config, "load": load, "steal_pct": steal,
            "result": {"req_per_s": rps, "ok": True}}


class Steal(unittest.TestCase):
    def test_share_of_all_ticks(self):
        # 1,000 ticks passed on the machine, 50 of them stolen, 230 idle
        t0, t1 = (10_000, 100, 4_000), (11_000, 150, 4_230)
        self.assertAlmostEqual(run.steal_pct(t0, t1), 5.0)
        self.assertAlmostEqual(run.idle_pct(t0, t1), 23.0)
        self.assertEqual(run.steal_pct(t0, t0), None)
        self.assertEqual(run.steal_pct(None, t1), None)
        self.assertEqual(run.idle_pct(t1, t0), None)

    def test_reads_this_machine(self):
        ticks = run.cpu_ticks()
        if ticks is None:
            self.skipTest("no /proc/stat here")
        total, steal, idle = ticks
        self.assertGreater(total, 0)
        self.assertGreaterEqual(steal, 0)
        self.assertLessEqual(steal + idle, total)

    def test_log_note_only_when_there_was_steal(self):
        self.assertEqual(run.steal_note({"steal_pct": 0.1}), "")
        self.assertEqual(run.steal_note({"steal_pct": None}), "")
        self.assertEqual(run.steal_note({"steal_pct": 21.4}), ", steal 21 %")


class SameRoundRatios(unittest.TestCase):
    # Round 2's ceiling lost a third of its cores: its ratio is inflated.
    RUNS = [
        rec(0, "ours-mysql", 60_000), rec(0, "ceiling-mysql-1c", 150_000),
        rec(1, "ours-mysql", 62_000), rec(1, "ceiling-mysql-1c", 155_000, steal=1.0),
        rec(2, "ours-mysql", 58_000), rec(2, "ceiling-mysql-1c", 70_000, steal=31.0),
    ]

    def test_all_rounds(self):
        got = run.round_ratios(self.RUNS, "ours-mysql", "ceiling-mysql-1c", "check w64")
        self.assertEqual(len(got), 3)
        self.assertAlmostEqual(run.same_round_ratio(self.RUNS, "ours-mysql", "ceiling-mysql-1c", "check w64"),
                               62_000 / 155_000)

    def test_rounds_that_kept_their_cores(self):
        got = run.round_ratios(self.RUNS, "ours-mysql", "ceiling-mysql-1c", "check w64", calm_only=True)
        self.assertEqual(sorted(got), sorted([60_000 / 150_000, 62_000 / 155_000]))

    def test_steal_on_our_side_drops_the_round_too(self):
        runs = [rec(0, "ours-mysql", 30_000, steal=40.0), rec(0, "ceiling-mysql-1c", 150_000)]
        self.assertEqual(run.round_ratios(runs, "ours-mysql", "ceiling-mysql-1c", "check w64", calm_only=True), [])

    def test_targets_table_shows_both(self):
        table = run.targets(self.RUNS)
        line = next(x for x in table.splitlines()
                    if x.startswith("| mysql check w64 ≥ 60 % of the mysql ceiling at the issue's batch shape"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        # all rounds: the median 40 %; the two calm rounds: 40 % as well (of 3)
        self.assertEqual(cells[1:], ["40%", "NOT met", "40% (2 of 3)"])

    def test_disturbed_section(self):
        text = run.disturbed_section(self.RUNS)
        self.assertIn("| 3 | ceiling-mysql-1c | check w64 | 70,000 | 31 |", text)
        self.assertNotIn("| 2 | ceiling-mysql-1c", text)
        self.assertIn("None", run.disturbed_section(self.RUNS[:2]))


class CpuBudget(unittest.TestCase):
    def test_medians_per_row(self):
        runs = []
        for rnd, (srv, db, gen, idle, rps) in enumerate([(9.0, 7.0, 6.0, 20.0, 60_000),
                                                         (10.0, 8.0, 7.0, 25.0, 66_000),
                                                         (11.0, 9.0, 8.0, 30.0, 70_000)]):
            r = rec(rnd, "ours-mysql", rps)
            r.update(server_cpu_us_per_req=srv, db_cpu_us_per_req=db, gen_cpu_us_per_req=gen, idle_pct=idle)
            runs.append(r)
        runs.append(rec(0, "ceiling-mysql-1c", 150_000))  # no server CPU: not a row here
        text = run.cpu_budget_section(runs)
        self.assertIn("| ours-mysql | check w64 | 66,000 | 10.0 | 8.0 | 7.0 | 25 | 0 |", text)
        self.assertNotIn("ceiling-mysql-1c", text)
        self.assertEqual(run.cpu_budget_section([]), "")


if __name__ == "__main__":
    unittest.main()
