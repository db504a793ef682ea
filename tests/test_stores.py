"""The ResultsStore contract, run against every store: the five core methods and what the base
class derives from them."""

import multiprocessing
import pickle

import pytest

from fluidml.storage import InMemoryStore, ResultsStore, Sweep

A1 = {"A": {"x": 1}}
A2 = {"A": {"x": 2}}
B1 = {"A": {"x": 1}, "B": {"y": 1}}


def test_save_then_load_round_trips(make_store):
    """What is saved under (name, task, config) loads back equal."""
    store = make_store()
    store.save({"k": [1, 2]}, "obj", type_="pickle", task_name="A", task_unique_config=A1)
    assert store.load("obj", "A", A1) == {"k": [1, 2]}


def test_runs_are_told_apart_by_their_exact_config(make_store):
    """Two configs of one task are two runs; a config that merely contains another is not it."""
    store = make_store()
    store.save(1, "v", type_="pickle", task_name="A", task_unique_config=A1)
    store.save(2, "v", type_="pickle", task_name="A", task_unique_config=A2)
    assert store.load("v", "A", A1) == 1
    assert store.load("v", "A", A2) == 2
    assert store.load("v", "A", {**A1, "B": {}}) is None
    assert store.load("v", "other", A1) is None


def test_config_key_order_does_not_matter(make_store):
    """Equal configs with different key order address the same run."""
    store = make_store()
    store.save(1, "v", type_="pickle", task_name="B", task_unique_config={"A": {"x": 1, "z": 2}, "B": {}})
    assert store.load("v", "B", {"B": {}, "A": {"z": 2, "x": 1}}) == 1


def test_missing_objects_load_as_none(make_store):
    """Loading what was never saved returns None (no exception, no warning needed)."""
    store = make_store()
    assert store.load("nothing", "A", A1) is None
    store.save(1, "v", type_="pickle", task_name="A", task_unique_config=A1)
    assert store.load("nothing", "A", A1) is None


def test_saving_again_overwrites(make_store):
    """Saving under an existing name replaces the object."""
    store = make_store()
    store.save(1, "v", type_="pickle", task_name="A", task_unique_config=A1)
    store.save(2, "v", type_="pickle", task_name="A", task_unique_config=A1)
    assert store.load("v", "A", A1) == 2


def test_delete_removes_one_object(make_store):
    """delete() removes one object and leaves the rest of the run; deleting twice is harmless."""
    store = make_store()
    store.save(1, "v", type_="pickle", task_name="A", task_unique_config=A1)
    store.save(2, "w", type_="pickle", task_name="A", task_unique_config=A1)
    store.delete("v", "A", A1)
    store.delete("v", "A", A1)
    assert store.load("v", "A", A1) is None
    assert store.load("w", "A", A1) == 2


def test_delete_run_removes_only_that_run(make_store):
    """delete_run() removes every object of one run and no other run."""
    store = make_store()
    store.save(1, "v", type_="pickle", task_name="A", task_unique_config=A1)
    store.save(2, "v", type_="pickle", task_name="A", task_unique_config=A2)
    store.delete_run("A", A1)
    store.delete_run("A", A1)
    assert store.load("v", "A", A1) is None
    assert store.load("v", "A", A2) == 2


def test_get_results_collects_registered_objects(make_store):
    """get_results() returns the objects the run saved and registered (each listed once), or None
    without any."""
    store = make_store()
    assert store.get_results("A", A1) is None
    store.save(1, "v", type_="pickle", task_name="A", task_unique_config=A1)
    store._register_result("v", "A", A1)
    store._register_result("v", "A", A1)
    store.save(2, "w", type_="pickle", task_name="A", task_unique_config=A1)
    store._register_result("w", "A", A1)
    assert store.load(".saved_results", "A", A1) == ["v", "w"]
    assert store.get_results("A", A1) == {"v": 1, "w": 2}
    store.delete("w", "A", A1)
    store._unregister_result("w", "A", A1)
    assert store.load(".saved_results", "A", A1) == ["v"]
    assert store.get_results("A", A1) == {"v": 1}


def test_is_finished_reads_the_stored_state(make_store):
    """is_finished() is true only for a run whose stored info says "finished"."""
    store = make_store()
    assert not store.is_finished("A", A1)
    store.save({"state": "failed"}, "fluidml_info", type_="json", task_name="A", task_unique_config=A1)
    assert not store.is_finished("A", A1)
    store.save({"state": "finished"}, "fluidml_info", type_="json", task_name="A", task_unique_config=A1)
    assert store.is_finished("A", A1)
    assert not store.is_finished("A", {**A1, "B": {}})


class ListingStore(InMemoryStore):
    """An in-memory store that can also list its runs' configs (as file and database stores do)."""

    def __init__(self):
        super().__init__()
        self.configs = []

    def save(self, obj, name, task_name, task_unique_config, type_=None, **kwargs):
        super().save(obj, name, task_name, task_unique_config, type_, **kwargs)
        if (task_name, task_unique_config) not in self.configs:
            self.configs.append((task_name, task_unique_config))

    def stored_configs(self, task_name):
        return [config for name, config in self.configs if name == task_name]


def test_find_unique_config_matches_contained_configs():
    """A larger config finds the run of an upstream task whose config it contains."""
    store = ListingStore()
    store.save(1, "v", type_="pickle", task_name="A", task_unique_config=A1)
    store.save(2, "v", type_="pickle", task_name="A", task_unique_config=A2)
    assert store.find_unique_config("A", {**A2, "B": {"y": 5}}) == A2
    assert store.find_unique_config("A", {"A": {"x": 3}, "B": {}}) is None


def test_find_unique_config_prefers_the_most_specific_run():
    """When several stored configs are contained, the one with most entries wins, whatever the
    order they were stored in."""
    for order in ((0, 1), (1, 0)):
        store = ListingStore()
        configs = [{"A": {"x": 1}}, {"P": {"p": 0}, "A": {"x": 1}}]
        for i in order:
            store.save(i, "v", type_="pickle", task_name="A", task_unique_config=configs[i])
        assert store.find_unique_config("A", {"P": {"p": 0}, "A": {"x": 1}, "B": {}}) == configs[1]


def test_in_memory_store_does_not_list_runs():
    """The in-memory store keeps no configs (they grow with the graph's depth), so it cannot
    resolve a larger config on its own; Task.load resolves it through the flow's graph."""
    store = InMemoryStore()
    store.save(1, "v", "A", A1)
    assert list(store.stored_configs("A")) == []
    assert store.find_unique_config("A", B1) is None


def test_lock_is_a_context_manager(make_store):
    """The lock is usable without being assigned, and an assigned one is used."""
    store = make_store()
    with store.lock:
        pass
    lock = multiprocessing.RLock()
    store.lock = lock
    assert store.lock is lock


def test_in_memory_store_context_and_open_are_none():
    """The in-memory store has no run directories and cannot open files."""
    store = InMemoryStore()
    assert store.get_context("A", A1) is None
    assert store.open("v", "A", A1, "w", type_="text") is None


def test_in_memory_store_shared_through_a_manager():
    """With a multiprocessing manager, the store's runs live in a manager dict other processes see."""
    with multiprocessing.Manager() as manager:
        store = InMemoryStore(manager)
        store.save([1, 2], "v", "A", A1)
        assert store.load("v", "A", A1) == [1, 2]
        assert type(store._runs).__name__ == "DictProxy"
        store.delete("v", "A", A1)
        assert store.load("v", "A", A1) is None


def test_in_memory_store_pickles_with_its_contents():
    """An InMemoryStore can be pickled (e.g. to hand results to another process)."""
    store = InMemoryStore()
    store.save(Sweep(1, {"A": {}}), "s", "A", A1)
    copy = pickle.loads(pickle.dumps(store))
    assert copy.load("s", "A", A1) == Sweep(1, {"A": {}})


def test_a_custom_store_needs_only_the_core_methods():
    """A subclass that implements the five core methods gets the derived behaviour."""

    class DictStore(ResultsStore):
        def __init__(self):
            super().__init__()
            self.data = {}

        def save(self, obj, name, type_, task_name, task_unique_config, **kwargs):
            self.data[(task_name, repr(task_unique_config), name)] = obj

        def load(self, name, task_name, task_unique_config, **kwargs):
            return self.data.get((task_name, repr(task_unique_config), name))

        def delete(self, name, task_name, task_unique_config):
            self.data.pop((task_name, repr(task_unique_config), name), None)

        def delete_run(self, task_name, task_unique_config):
            for key in [k for k in self.data if k[:2] == (task_name, repr(task_unique_config))]:
                del self.data[key]

        def get_context(self, task_name, task_unique_config):
            return None

    store = DictStore()
    store.save({"state": "finished"}, "fluidml_info", "json", "A", A1)
    store.save(5, "v", "json", "A", A1)
    store._register_result("v", "A", A1)
    assert store.is_finished("A", A1)
    assert store.get_results("A", A1) == {"v": 5}
    assert store.find_unique_config("A", B1) is None  # cannot list its runs: exact lookups only


def test_the_store_interface_is_abstract():
    """ResultsStore cannot be instantiated without the core methods."""
    with pytest.raises(TypeError):
        ResultsStore()
