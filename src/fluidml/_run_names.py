"""Random "adjective-noun" run names, for runs started without ``run_name``."""

_ADJECTIVES = """
able agile amber ancient arctic ardent azure balmy bold brave breezy bright brisk bronze calm
candid careful cheerful chilly civic clever cobalt cosmic crisp curious daring dawning deft
dreamy dusky eager early earnest elegant emerald epic even fabled fair fearless fervent fierce
fluent flying fond frosty gentle giddy gilded glad gleaming golden graceful grand green hardy
hazy hearty helpful hidden honest humble icy idle indigo ivory jade jolly jovial keen kind lively
lofty loyal lucid lucky lunar mellow merry mighty misty modest mossy nimble noble northern novel
oaken odd olive opal patient peaceful plucky polar polished proud quick quiet radiant rapid rare
ready restless rising robust rosy royal rustic sage scarlet serene sharp shiny silent silver
simple sleek smooth snowy solar sonic spry stable steady stellar stoic sturdy sunny swift tame
tidy timely tranquil true trusty upbeat urban valiant vast velvet vivid warm wary wild windy wise
witty young zealous zesty
""".split()

_NOUNS = """
acorn anchor apple arrow aspen aurora badger banjo barley beacon bison bloom breeze brook cactus
canyon castle cedar comet condor coral cosmos cotton crane crater cricket crystal cypress delta
dolphin dune eagle ember falcon fern finch fjord flame forest fossil fox galaxy garden geyser
glacier grove harbor hawk heron hill horizon iris island ivy jaguar jasmine kayak kernel kite
lagoon lantern lark lemon lily lotus lynx maple marble meadow meteor mist moon moss nebula nectar
oak oasis ocean orchid otter owl panda pebble pepper pine planet pond prairie quartz quasar rain
raven reef ridge river robin sage sail salmon sequoia shore sparrow spruce star stone storm
summit sun swan thistle thunder tiger tulip tundra valley violet volcano walnut wave willow wind
wolf wren yak zephyr
""".split()


def random_run_name() -> str:
    """A random run name such as ``"brisk-otter"``."""
    import random  # here: `import fluidml` does not need it

    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}"
