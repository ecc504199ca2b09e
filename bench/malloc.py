"""glibc's default malloc against `dilnet.allocator.reuse_freed_memory`, each in a fresh process.

    python bench/malloc.py [--repeats 4] [--json bench/results/malloc-cpu-DATE.json]

Three jobs, each run in two fresh interpreters (the setting is process-wide and lasting): one
with glibc's defaults (the peer), one that calls ``reuse_freed_memory()`` first.

* ``predict``: the ``context3d-basic`` zoo network on the whole MNI152 template (99 x 117 x 95),
  ``Model.predict``, batch 1 -- layer outputs of 70 MB, above glibc's largest mmap threshold;
* ``fit``: ``Model.train_on_batch`` of a context-module model on 2 x 32^3 patches;
* ``tiles``: ``predict_volume`` of the same zoo network over the template in tiles of 32.

Prints the median seconds per call (after one untimed call), the peak resident memory of each
process, the ratios reuse / default, and checks both gave the same results.
"""

import argparse
import json
import platform
import subprocess
import sys
import textwrap

JOB = textwrap.dedent("""
    import json, resource, statistics, sys, time
    import numpy as np
    mode, job, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "reuse":
        from dilnet.allocator import reuse_freed_memory
        assert reuse_freed_memory()
    import dilnet_zoo
    from dilnet.cli import normalize
    from dilnet.inference import predict_volume
    from dilnet_zoo.data.mni152 import load_mni152
    t1 = normalize(load_mni152()["t1"][None].astype("float32"), "minmax")
    if job == "fit":
        sys.path.insert(0, "bench")
        from model import context_spec
        from dilnet.model import Model
        model = Model(context_spec(), seed=0)
        model.compile("adam", "crossentropy", learning_rate=0.001)
        rng = np.random.default_rng(0)
        x = rng.random((2, 1, 32, 32, 32)).astype("float32")
        y = rng.integers(0, 4, (2, 32, 32, 32))
        call = lambda: model.train_on_batch(x, y)["loss"]
    else:
        model = dilnet_zoo.load("context3d-basic", pretrained=True)
        if job == "predict":
            call = lambda: model.predict(t1[None])
        else:
            call = lambda: predict_volume(model, t1, tile=32, progress=False)
    first = call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
    check = float(np.asarray(first, dtype=np.float64).sum())
    print(json.dumps({"seconds": statistics.median(times), "check": check,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def run(mode, job, repeats):
    done = subprocess.run([sys.executable, "-c", JOB, mode, job, str(repeats)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    import pytensor

    import dilnet

    results = {
        "environment": {
            "python": platform.python_version(),
            "machine": platform.processor() or platform.machine(),
            "libc": " ".join(platform.libc_ver()),
            "pytensor": pytensor.__version__,
            "dilnet": dilnet.__version__,
        }
    }
    print("| job | default s | reuse s | reuse / default | default peak MiB | reuse peak MiB |")
    print("|---|---|---|---|---|---|")
    for job in ("predict", "fit", "tiles"):
        default, reuse = run("default", job, args.repeats), run("reuse", job, args.repeats)
        # the first call of the fit job trains from the same seed: the same loss either way
        assert abs(default["check"] - reuse["check"]) <= 1e-6 * max(1.0, abs(default["check"]))
        ratio = reuse["seconds"] / default["seconds"]
        results[job] = {"default": default, "reuse": reuse, "time_ratio": ratio}
        print(f"| {job} | {default['seconds']:.3f} | {reuse['seconds']:.3f} | {ratio:.2f}x | "
              f"{default['peak_rss_mib']:.0f} | {reuse['peak_rss_mib']:.0f} |", flush=True)  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
