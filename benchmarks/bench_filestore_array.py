"""A large numpy array saved and loaded through LocalFileStore (type "pickle"), against a raw pickle round
trip of the same array (pickle.dump to a file, pickle.load back, highest protocol). Reports the time of each
and the peak memory the store's round trip adds on top of the process holding the array; SIZE is in MB.
Where the store has the option, also the round trip with LocalFileStore(verify=True) (the checksum of the
array's file checked as it loads)."""

import inspect
import os
import pickle
import shutil
import tempfile
import time

import numpy as np

from fluidml.storage import LocalFileStore

from _common import best_of, emit, parse_args

CONFIG = {"array": {}}
VERIFY = "verify" in inspect.signature(LocalFileStore.__init__).parameters


def rss_peak_reset() -> bool:
    """Resets the process's peak RSS (VmHWM) so that the next read measures from now (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def main() -> None:
    args = parse_args(__doc__, "array size in MB")
    array = np.random.default_rng(0).random(args.size * 1024 * 1024 // 8)
    work = tempfile.mkdtemp(prefix="fluidml-bench-array-", dir=".")

    def store_round_trip(peak=None, **options):
        store = LocalFileStore(os.path.join(work, f"store-{time.perf_counter_ns()}"), **options)
        start = time.perf_counter()
        store.save(array, "array", type_="pickle", task_name="array", task_unique_config=CONFIG)
        loaded = store.load("array", task_name="array", task_unique_config=CONFIG)
        seconds = time.perf_counter() - start
        if peak is not None:
            peak.append(rss_kb("VmHWM"))  # before the check below, whose temporary array is not the store's
        assert np.array_equal(loaded, array)
        shutil.rmtree(store.base_dir)
        return seconds

    def raw_round_trip():
        path = os.path.join(work, "raw.p")
        start = time.perf_counter()
        with open(path, "wb") as f:
            pickle.dump(array, f, protocol=pickle.HIGHEST_PROTOCOL)
        with open(path, "rb") as f:
            loaded = pickle.load(f)
        seconds = time.perf_counter() - start
        assert np.array_equal(loaded, array)
        os.remove(path)
        return seconds

    def trial():
        timings = {"seconds": store_round_trip(), "raw_seconds": raw_round_trip()}
        if VERIFY:
            timings["verify_seconds"] = store_round_trip(verify=True)
        return timings, {}

    try:
        # peak memory first, in a process that has only allocated the array (freed memory of earlier
        # trials would otherwise be reused unseen): what the store's save + load adds on top of it
        peak_note = "VmHWM after clear_refs"
        if rss_peak_reset():
            before, peak = rss_kb("VmRSS"), []
            store_round_trip(peak)
            added_mb = (peak[0] - before) / 1024
        else:
            added_mb, peak_note = float("nan"), "peak RSS cannot be reset here"
        result = best_of(trial, args.repeats, args.budget * 5)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    array_mb = array.nbytes / 2**20
    if "verify_seconds" in result:
        result["verify_time_ratio"] = result["verify_seconds"] / result["raw_seconds"]
    emit({"scenario": "filestore_array", "array_mb": array_mb, **result, "num_tasks": 1,
          "time_ratio": result["seconds"] / result["raw_seconds"], "peak_added_mb": added_mb,
          "peak_ratio": added_mb / array_mb, "peak_method": peak_note})


if __name__ == "__main__":
    main()
