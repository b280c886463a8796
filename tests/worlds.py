"""One shared test world with known answers, big enough that Recall@10 means something (40 items).

- Three genre clusters of 12 movies (horror, animation, romance). In training every movie of a cluster is
  followed by every other movie of the same cluster once, so after a movie the right answer is "another
  movie of its cluster", and which one is a uniform draw from 11: a model that learned the clusters has
  Recall@10 near 10/11 on the validation samples, and it cannot reach 1 (the 11 samples of one context
  share their scores, so at most 10 of their 11 targets fit in a top 10). Popularity or chance is near 1/4.
- A blockbuster (a heist film) that the recommender proposes on its own in many dialogues with no movie
  named: the most popular item by far, whose text matches no cluster.
- Three documentaries never mentioned in training (popularity 0), each with a distinctive text.

Items have genres and plots, and dialogues have text, so the dense retriever and the text models can use
them. Build it with :func:`world`; everything is deterministic.

``world(classics=True)`` adds ten real-looking movies with directors and casts that no dialogue mentions
(:data:`CLASSICS`, 50 items in all): what title grounding and reply reasons need, including the traps of a
remake that shares its original's title (Halloween, 1978 and 2007) and a sequel one letter longer than its
original (Alien, Aliens). They change no answer above: popularity 0, never seen with another item.
"""

from __future__ import annotations

from dataclasses import dataclass

from convrec.catalog.items import Catalog, Item
from convrec.data.dataset import CRSDataset, Split
from convrec.data.model import Dialogue, Turn

CLUSTER_SIZE = 12
BLOCKBUSTER = "heist"
BLOCKBUSTER_DIALOGUES = 40
BLOCKBUSTER_REQUEST = "Hi, what is a good movie to watch tonight?"  # what the seekers of those dialogues say

# LRURec options that learn the clusters in a second or two (items only, one thread): for tests that need a
# trained retriever on this world rather than a test of its training.
FAST_LRUREC = {"hidden": 16, "n_blocks": 1, "dropout": 0.0, "text_init": False,
               "train": {"epochs": 8, "batch_size": 32, "lr": 0.01, "patience": 8, "threads": 1}}

# Per genre: the plot template and the 12 settings that tell its movies apart.
GENRES = {
    "horror": ("A vengeful ghost and a demon haunt a family who moved into a {}; a terrifying, scary horror film.",
               ["farmhouse", "lighthouse", "hospital", "boarding school", "cabin in the woods", "motel",
                "church", "submarine", "prison", "carnival", "mansion", "ship"]),
    "animation": ("An animated family adventure: a talking {} and its friends go on a funny journey, for kids.",
                  ["toy robot", "clownfish", "penguin", "dragon", "car", "mouse chef", "snowman", "panda",
                   "dinosaur", "balloon house", "bee", "lion cub"]),
    "romance": ("A romantic drama: two strangers fall in love {}, a tender and passionate love story.",
                ["in Paris", "on a train", "at a wedding", "in wartime", "by letters", "at a summer camp",
                 "in a bookshop", "on a cruise", "in the rain", "at a dance school", "in Venice", "at sea"]),
}
DOCUMENTARIES = {
    "whales": ("Deep Blue Giants", "A nature documentary about humpback whales migrating across the deep ocean."),
    "chess": ("Sixty-Four Squares", "A documentary about grandmasters at the world chess championship."),
    "climb": ("The North Face", "A documentary about mountaineers climbing a frozen Himalayan peak."),
}


def movie(item_id: str, title: str, year: int, genre: list[str], director: str, stars: list[str], plot: str) -> Item:
    return Item(item_id, title, year, {"genre": genre, "director": [director], "star": stars, "plot": plot})


CLASSICS = [
    movie("conjuring", "The Conjuring", 2013, ["horror", "mystery"], "James Wan", ["Vera Farmiga", "Patrick Wilson"],
          "Paranormal investigators work to help a family terrorized by a dark presence in their farmhouse."),
    movie("insidious", "Insidious", 2010, ["horror", "mystery", "thriller"], "James Wan",
          ["Patrick Wilson", "Rose Byrne"], "A family looks to prevent evil spirits from trapping their comatose "
          "child in a realm called The Further."),
    movie("toystory", "Toy Story", 1995, ["animation", "comedy", "family"], "John Lasseter",
          ["Tom Hanks", "Tim Allen"], "A cowboy doll is profoundly threatened when a new spaceman toy arrives."),
    movie("nemo", "Finding Nemo", 2003, ["animation", "adventure"], "Andrew Stanton",
          ["Albert Brooks", "Ellen DeGeneres"], "A clownfish searches the ocean for his captured son."),
    movie("notebook", "The Notebook", 2004, ["drama", "romance"], "Nick Cassavetes", ["Ryan Gosling", "Rachel McAdams"],
          "A poor yet passionate young man falls in love with a rich young woman."),
    movie("halloween78", "Halloween", 1978, ["horror", "thriller"], "John Carpenter",
          ["Jamie Lee Curtis", "Donald Pleasence"], "A masked killer stalks babysitters on Halloween night."),
    movie("halloween07", "Halloween", 2007, ["horror"], "Rob Zombie", ["Malcolm McDowell"],
          "A remake of the slasher classic about Michael Myers."),
    movie("alien", "Alien", 1979, ["horror", "sci-fi"], "Ridley Scott", ["Sigourney Weaver", "Tom Skerritt"],
          "The crew of a commercial spacecraft encounter a deadly lifeform."),
    movie("aliens", "Aliens", 1986, ["action", "sci-fi"], "James Cameron", ["Sigourney Weaver", "Michael Biehn"],
          "Ripley returns to the moon where her crew encountered the hostile creature."),
    movie("up", "Up", 2009, ["animation", "adventure"], "Pete Docter", ["Ed Asner"],
          "An old man ties thousands of balloons to his house to fly to South America."),
]


def cluster_ids(genre: str) -> list[str]:
    return [f"{genre}{n}" for n in range(CLUSTER_SIZE)]


def catalog(classics: bool = False) -> Catalog:
    items = []
    for genre, (plot, settings) in GENRES.items():
        for item_id, setting in zip(cluster_ids(genre), settings, strict=True):
            title = f"The {setting.title()}" if genre != "romance" else f"Love {setting.title()}"
            items.append(Item(item_id, title, 2000 + len(items), {"genre": [genre], "plot": plot.format(setting)}))
    items.append(Item(BLOCKBUSTER, "Heist Royale", 2010, {
        "genre": ["crime", "action"], "plot": "A crew of thieves plans to rob a Las Vegas casino vault."}))
    for item_id, (title, plot) in DOCUMENTARIES.items():
        items.append(Item(item_id, title, 2015, {"genre": ["documentary"], "plot": plot}))
    if classics:
        items += CLASSICS
    return Catalog(items, name="test-world")


def liked_then_recommended(dialogue_id: str, split: str, liked: Item, recommended: Item) -> Dialogue:
    genre = liked.metadata["genre"][0]
    return Dialogue(dialogue_id, split, [
        Turn("seeker", f"I liked {liked.title}. Any other {genre} movies?", (liked.item_id,)),
        Turn("recommender", f"Try {recommended.title}.", (recommended.item_id,)),
    ])


def open_request(dialogue_id: str, split: str, seeker_text: str, recommended: Item) -> Dialogue:
    """A dialogue whose seeker names no movie: only the text says what they want."""
    return Dialogue(dialogue_id, split, [Turn("seeker", seeker_text),
                                         Turn("recommender", f"Try {recommended.title}.", (recommended.item_id,))])


@dataclass
class World:
    catalog: Catalog
    train: Split
    valid: Split
    test: Split

    def dataset(self) -> CRSDataset:
        dialogues = [*self.train.dialogues, *self.valid.dialogues, *self.test.dialogues]
        return CRSDataset(self.catalog.name, self.catalog, dialogues, {"fingerprint": f"test-world-{len(self.catalog)}"})

    def item(self, item_id: str) -> Item:
        return self.catalog[self.catalog.index_of[item_id]]


def world(classics: bool = False) -> World:
    """Train: every ordered pair of one cluster once, and the blockbuster alone. Valid (test): the first
    (second) movie of each cluster followed by each of the 11 others. ``classics``: the catalogue also holds
    :data:`CLASSICS`, which no dialogue mentions."""
    items = catalog(classics)
    by_id = {item.item_id: item for item in items}
    train = [liked_then_recommended(f"t-{a}-{b}", "train", by_id[a], by_id[b])
             for genre in GENRES for a in cluster_ids(genre) for b in cluster_ids(genre) if a != b]
    train += [open_request(f"t-pop{n}", "train", BLOCKBUSTER_REQUEST, by_id[BLOCKBUSTER])
              for n in range(BLOCKBUSTER_DIALOGUES)]

    def from_context(split: str, position: int) -> list[Dialogue]:
        dialogues = []
        for genre in GENRES:
            ids = cluster_ids(genre)
            dialogues += [liked_then_recommended(f"{split}-{ids[position]}-{b}", split, by_id[ids[position]], by_id[b])
                          for b in ids if b != ids[position]]
        return dialogues

    return World(items, Split("train", items, train), Split("valid", items, from_context("valid", 0)),
                 Split("test", items, from_context("test", 1)))
