#!/usr/bin/python3
"""bench/group_scaling.py's model, and tlsweep-group-bench's gradient sizes.

    test_group_scaling.py SCALING_PY                  # the model on made-up figures
    test_group_scaling.py SCALING_PY BENCH_BINARY     # also a tiny run of the bench under mpirun

The gradient sizes are checked against Keras: model.summary() of
keras.applications.X(include_top=False) reports the trainable parameters of the backbone
(BN moving statistics are not trainable), and the bench's head adds GAP + Dense(10)."""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest

SCALING = BENCH = None
# Keras's trainable parameters of the notop backbones, and their feature channels
KERAS_TRAINABLE = {"mobilenet_v2": (2223872, 1280), "resnet50": (23534592, 2048),
                   "vgg16": (14714688, 512)}


def load_scaling():
    spec = importlib.util.spec_from_file_location("group_scaling", SCALING)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def model(step=1.0, adam=0.01, nbytes=100e6, batch=32):
    return {"backbone": "x", "batch": batch, "ranks": 2, "threads_one": 2,
            "trainable_params": int(nbytes // 4), "gradient_bytes": nbytes,
            "one_step_s_median": step, "adam_s_median": adam, "allreduce_s": [0.01],
            "allreduce_s_median": 0.01}


class Model(unittest.TestCase):
    def setUp(self):
        self.g = load_scaling()

    def test_ring_allreduce(self):
        # 4 ranks, 1 GB/s, 10 us: 2*3/4 * 1e8 / 1e9 + 2*3 * 1e-5
        self.assertAlmostEqual(self.g.ring_allreduce(1e8, 4, 1e9, 1e-5), 0.15 + 6e-5)
        self.assertEqual(self.g.ring_allreduce(1e8, 1, 1e9, 1e-5), 0.0)

    def test_one_node_is_one(self):
        for fn in (self.g.speedup_fixed_global, self.g.speedup_per_node):
            self.assertAlmostEqual(fn(model(), 1, 12e9, 2e-6), 1.0)

    def test_fixed_global_batch(self):
        m = model(step=1.0, adam=0.1, nbytes=12e6)
        # 2 nodes: half the forward/backward, the whole optimizer, one gradient sum
        comm = 12e6 / 12e9 + 2 * 2e-6 + 2 * 2e-6
        self.assertAlmostEqual(self.g.step_fixed_global(m, 2, 12e9, 2e-6), 0.45 + 0.1 + comm)
        # a group never has more members than the batch has rows
        self.assertAlmostEqual(self.g.speedup_fixed_global(m, 64, 12e9, 2e-6),
                               self.g.speedup_fixed_global(m, 32, 12e9, 2e-6))
        # a slower network never helps
        self.assertLess(self.g.speedup_fixed_global(m, 8, 1.1e9, 20e-6),
                        self.g.speedup_fixed_global(m, 8, 12e9, 2e-6))

    def test_auto_groups(self):
        self.assertEqual(self.g.auto_groups(), [3, 3, 3, 3, 2, 2])

    def test_sweep(self):
        m = model(step=1.0, adam=0.0, nbytes=0)
        steps = -(-self.g.SWEEP_IMAGES // 32)
        alone = self.g.sweep_wall(m, [1] * 6, 1e9, 0, False)
        self.assertAlmostEqual(alone, self.g.SWEEP_EPOCHS * steps * 1.0)
        kept = self.g.sweep_wall(m, self.g.auto_groups(), 1e9, 0, False)
        # free communication, linear compute: the groups of 2 decide, at half the time
        self.assertAlmostEqual(kept, alone / 2, delta=alone * 1e-6)
        regrouped = self.g.sweep_wall(m, self.g.auto_groups(), 1e9, 0, True)
        self.assertLess(regrouped, kept)
        # nothing is faster than every node busy all the time (16 nodes for 6 trials)
        self.assertGreaterEqual(regrouped, alone * 6 / 16 - 1e-6)


class Bench(unittest.TestCase):
    """a tiny run (32 px, 1 round): the figures the model reads, Keras's sizes"""

    def test_tiny_run(self):
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        out = subprocess.run(["mpirun", "-np", "2", "--oversubscribe", "--bind-to", "none", BENCH,
                              "--size", "32", "--rounds", "1", "--reps", "1"],
                             env=env, capture_output=True, text=True, timeout=600)
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
        models = {o["backbone"]: o for o in lines if o.get("what") == "model"}
        self.assertEqual(sorted(models), sorted(KERAS_TRAINABLE))
        for name, (backbone, channels) in KERAS_TRAINABLE.items():
            m = models[name]
            self.assertEqual(m["trainable_params"], backbone + channels * 10 + 10, name)
            self.assertEqual(m["gradient_bytes"], 4 * m["trainable_params"])
            for key in ("allreduce_s", "one_step_s", "group_step_s", "adam_s", "bcast_s"):
                self.assertGreater(m[key + "_median"], 0, key)
            # the leader's collectives are part of its group step
            self.assertLessEqual(m["group_comm_s_median"], m["group_step_s_median"])
        self.assertTrue(any(o.get("what") == "latency" for o in lines))
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as f:
            f.write(out.stdout)
            f.flush()
            tab = subprocess.run([sys.executable, SCALING, f.name], capture_output=True,
                                 text=True, timeout=60)
        self.assertEqual(tab.returncode, 0, tab.stderr)
        self.assertIn("| VGG16 | 10 GbE |", tab.stdout)


if __name__ == "__main__":
    SCALING = sys.argv[1]
    BENCH = sys.argv[2] if len(sys.argv) > 2 else None
    if BENCH is None:
        del Bench
    unittest.main(argv=sys.argv[:1], verbosity=2)
