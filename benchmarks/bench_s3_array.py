"""A large numpy array saved and loaded through FsspecStore on a local S3 server (moto, started by the
script on a free 127.0.0.1 port; type "pickle", streamed as a multipart upload and ranged reads).
Reports the round trip's time and the peak memory it adds on top of the process holding the array
(VmHWM after clear_refs), over the array's size; SIZE is in MB."""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fluidml.storage import FsspecStore

from _common import best_of, emit, parse_args
from bench_filestore_array import rss_kb, rss_peak_reset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from s3_server import S3TestServer  # noqa: E402  (the tests' server helper)

CONFIG = {"array": {}}


def main() -> None:
    args = parse_args(__doc__, "array size in MB")
    array = np.random.default_rng(0).random(args.size * 1024 * 1024 // 8)
    with tempfile.TemporaryDirectory(prefix="fluidml-bench-s3-array-") as work:
        with S3TestServer(Path(work) / "requests.log") as server:
            server.make_bucket("bench")
            store = FsspecStore("s3://bench/arrays", **server.options())
            store.save(np.zeros(4), "warm-up", task_name="warm", task_unique_config=CONFIG)  # the client exists
            assert store.load("warm-up", "warm", CONFIG).shape == (4,)

            def round_trip(peak=None):
                start = time.perf_counter()
                store.save(array, "array", type_="pickle", task_name="array", task_unique_config=CONFIG)
                loaded = store.load("array", task_name="array", task_unique_config=CONFIG)
                seconds = time.perf_counter() - start
                if peak is not None:
                    peak.append(rss_kb("VmHWM"))
                assert np.array_equal(loaded, array)
                return seconds

            peak_note = "VmHWM after clear_refs"
            if rss_peak_reset():
                before, peak = rss_kb("VmRSS"), []
                round_trip(peak)
                added_mb = (peak[0] - before) / 1024
            else:
                added_mb, peak_note = float("nan"), "peak RSS cannot be reset here"
            mark = server.log_size()
            result = best_of(lambda: ({"seconds": round_trip()}, {}), args.repeats, args.budget * 5)
            requests = server.requests(mark)
    array_mb = array.nbytes / 2**20
    emit({"scenario": "s3_array", "array_mb": array_mb, **result, "num_tasks": 1, "peak_added_mb": added_mb,
          "peak_ratio": added_mb / array_mb, "peak_method": peak_note, "requests": requests})


if __name__ == "__main__":
    main()
