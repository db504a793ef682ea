"""Save and load functions of custom types, registered by the store tests (``TypeInfo``): a text
type with keyword arguments, and a type that saves to a directory (``needs_path``)."""

import os


class Doubled:
    """A value saved as text twice (``3:3``)."""

    def __init__(self, value):
        self.value = value


def save_doubled(obj, file, sep=":"):
    file.write(f"{obj.value}{sep}{obj.value}")


def load_doubled(file, sep=":"):
    return Doubled(int(file.read().split(sep)[0]))


def save_to_dir(obj, path):
    os.makedirs(path)
    for key, value in obj.items():
        with open(os.path.join(path, key), "w") as f:
            f.write(value)


def load_from_dir(path):
    contents = {}
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name)) as f:
            contents[name] = f.read()
    return contents
