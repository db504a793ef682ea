"""MongoDBStore without a server: the optional dependency, arguments, addresses and client options."""

import pickle
import subprocess
import sys

import pytest

import fluidml.storage
from fluidml.exception import FluidmlError, ResultsStoreError
from fluidml.storage import MongoDBStore


def test_mongo_store_is_exported_and_pymongo_is_imported_only_for_a_store():
    """fluidml.storage lists MongoDBStore; importing it does not import pymongo."""
    assert "MongoDBStore" in fluidml.storage.__all__
    code = "import sys, fluidml.storage; print('pymongo' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_missing_pymongo_gives_the_install_command():
    """Without pymongo, making a store raises ImportError naming the extra to install."""
    code = (
        "import sys; sys.modules['pymongo'] = None\n"
        "from fluidml.storage import MongoDBStore\n"
        "try:\n    MongoDBStore('db')\nexcept ImportError as error:\n    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 'pip install "fluidml[mongo]"' in result.stdout


@pytest.mark.parametrize("kwargs", [{"db": ""}, {"db": 3}, {"db": "d", "collection_name": ""}])
def test_bad_arguments_are_rejected(kwargs):
    """An empty or non-string database or collection name is a ValueError that names the argument."""
    with pytest.raises(ValueError, match="db must be|collection_name must be"):
        MongoDBStore(**kwargs)


@pytest.mark.parametrize(
    "host, address",
    [
        (None, "localhost:27017"),
        ("db.example.org:27018", "db.example.org:27018"),
        ("mongodb://user:secret@h1:27017,h2:27018/?replicaSet=rs0", "h1:27017,h2:27018"),
    ],
)
def test_address_names_the_servers_without_credentials(host, address):
    """Error messages name the server(s) as host:port, never the password of a URI."""
    assert MongoDBStore("db", host=host).address == address


def test_server_selection_timeout_is_short_unless_the_uri_sets_it():
    """An unreachable server fails after 5 s by default; a URI option wins."""
    assert MongoDBStore("db")._client_options()["serverSelectionTimeoutMS"] == 5000
    uri = "mongodb://h:1/?serverSelectionTimeoutMS=200"
    assert "serverSelectionTimeoutMS" not in MongoDBStore("db", host=uri)._client_options()


def test_defaults_and_pickling_without_a_connection():
    """The default collection is the original's ("task_result"); an unused store pickles as is."""
    store = MongoDBStore("db", host="h:1")
    assert (store.db, store.collection_name, store.keeps_objects) == ("db", "task_result", False)
    assert store.process_safe  # worker processes use a pickled copy directly
    copy = pickle.loads(pickle.dumps(store))
    assert (copy.db, copy.collection_name, copy.host, copy._client) == ("db", "task_result", "h:1", None)


def test_store_errors_are_fluidml_errors():
    """ResultsStoreError is part of the fluidml exception hierarchy and pickles (it crosses processes)."""
    error = pickle.loads(pickle.dumps(ResultsStoreError("server gone", task_name="A")))
    assert isinstance(error, FluidmlError) and error.task_name == "A" and str(error) == "server gone"
