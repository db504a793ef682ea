"""What travels between the calling process and worker processes: large objects out of band, and
printed output forwarded whole and in order."""

import io
import multiprocessing
import pickle
import threading

import pytest

from fluidml import Flow, Task, TaskSpec
from fluidml.executors import _pickling
from fluidml.storage import InMemoryStore

np = pytest.importorskip("numpy", reason="numpy is not installed here")


def make(task: Task):
    task.save(np.arange(1_000_000, dtype=np.float64), "big")
    task.save(np.zeros(0), "empty")
    task.save(np.arange(20).reshape(4, 5)[:, ::2], "strided")  # not contiguous: pickled in band
    task.save({"nested": [np.ones(3), "text"]}, "mixed")


def use(big, empty, strided, mixed, task: Task):
    big[0] = -1.0  # the worker's copy is writable
    task.save(float(big[1:].sum()) + len(empty) + float(strided.sum()) + float(mixed["nested"][0].sum()), "total")


def test_large_objects_reach_the_parent_store_and_the_successor_whole_and_writable():
    """Arrays saved in a worker arrive in the calling process's store equal and writable (also empty
    and non-contiguous ones), and a successor in a worker gets them as inputs."""
    produce = TaskSpec(task=make)
    consume = TaskSpec(task=use)
    consume.requires(produce)
    store = InMemoryStore()
    Flow([produce, consume]).run(executor="processes", num_workers=2, results_store=store, progress=False)
    results = store.get_results("make", {"make": {}})
    assert np.array_equal(results["big"], np.arange(1_000_000, dtype=np.float64))
    assert results["big"].flags.writeable
    assert results["empty"].shape == (0,)
    assert results["strided"].tolist() == [[0, 2, 4], [5, 7, 9], [10, 12, 14], [15, 17, 19]]
    assert results["mixed"]["nested"][1] == "text"
    expected = float(np.arange(1, 1_000_000).sum()) + 0 + 114.0 + 3.0
    assert store.get_results("use", {"make": {}, "use": {}})["total"] == expected
    assert results["big"][0] == 0.0  # the successor changed its own copy only


def test_packed_objects_travel_out_of_band_without_their_buffers_in_the_stream():
    """A packed array's bytes go beside the message, not inside it, and come back equal."""
    array = np.arange(100_000, dtype=np.int64)
    packed = _pickling.pack(array)
    buffers: list = []
    stream = _pickling.dumps(("message", packed), buffers)
    assert len(stream) < 1000 and sum(b.raw().nbytes for b in buffers) == array.nbytes
    parent, child = multiprocessing.Pipe(duplex=True)
    sender = threading.Thread(target=_pickling.send_with_buffers, args=(parent, ("job", stream), buffers))
    sender.start()  # (the frames exceed the pipe's buffer: someone must read while they are written)
    try:
        kind, data, sizes = child.recv()
        received = _pickling.receive_buffers(child, sizes)
        sender.join()
        child.send("next")  # the pipe is still in step after the raw frames
        assert parent.recv() == "next"
    finally:
        parent.close()
        child.close()
    label, copy = pickle.loads(data, buffers=received)
    assert kind == "job" and label == "message"
    assert np.array_equal(copy.load(), array)


def redraw(task: Task):
    for step in range(5000):
        print(f"\rstep {step:5d}", end="")
    print(" done")
    print("second line")


def test_output_redrawn_with_carriage_returns_arrives_whole_and_in_order(capfd):
    """A line redrawn thousands of times with "\\r" (as progress bars do) reaches the calling process
    complete, followed by the next line, each labelled with its worker."""
    Flow([TaskSpec(task=redraw)]).run(executor="processes", num_workers=2, progress=False)
    out = capfd.readouterr().out
    assert out.endswith("[worker-1] step  4999 done\n[worker-1] second line\n")
    assert out.count("step ") == 5000 and out.index("step  4998") < out.index("step  4999")


def test_output_writer_sends_each_complete_line_once():
    """Partial writes are held back until their line ends, then sent once; flush sends the rest."""
    sent = []

    class Channel:
        def send(self, message):
            sent.append(message)

    from fluidml.executors._worker_io import OutputWriter as _OutputWriter

    writer = _OutputWriter(Channel(), "stdout", io.StringIO())
    for text in ["a", "b\nc", "d", "\n", "tail"]:
        writer.write(text)
    assert [m[2] for m in sent] == ["ab\n", "cd\n"]
    writer.flush()
    assert [m[2] for m in sent] == ["ab\n", "cd\n", "tail"]
