"""Where each dataset comes from and what its files must hash to.

Checksums and sizes are copied from the data mirror's ``MANIFEST.tsv`` into this source on purpose: the
registry is the project's own record of what it was built and evaluated on, so a changed upstream file or
a tampered mirror is caught instead of silently trusted. Origins are the public URLs where one exists;
files that only exist as mirror artefacts say so (``url=None``) and explain where they came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from convrec.io import DataError

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset.

    ``path`` is relative to the mirror root and is also where the file lands under the data dir. ``url``
    is the public origin: a direct file, or a zip archive when ``archive_member`` names the member to
    extract. ``url=None`` marks a mirror-only file; ``note`` then says where it came from.
    """

    path: str
    sha256: str
    size: int
    url: str | None
    archive_member: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        # Paths are joined onto the user's data dir, so refuse anything that could escape it.
        pure = PurePosixPath(self.path)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts or "\\" in self.path:
            raise ValueError(f"RemoteFile path must be relative and stay inside the data dir: {self.path!r}")
        if not _SHA256.fullmatch(self.sha256):
            raise ValueError(f"RemoteFile {self.path}: sha256 must be 64 lowercase hex digits")
        if self.size < 0:
            raise ValueError(f"RemoteFile {self.path}: negative size")
        if self.archive_member is not None and self.url is None:
            raise ValueError(f"RemoteFile {self.path}: archive_member needs an archive url")


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: its files plus the datasets it needs alongside (fetched first)."""

    name: str
    description: str
    homepage: str
    license: str
    files: tuple[RemoteFile, ...]
    requires: tuple[str, ...] = field(default=())

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


_REDIAL_ZIP = "https://github.com/ReDialData/website/raw/data/redial_dataset.zip"
_INSPIRED_RAW = "https://raw.githubusercontent.com/sweetpeach/Inspired/master/data/dialog_data"
_ML_SMALL_ZIP = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
_UNICRS_NOTE = "UniCRS preprocessing of INSPIRED (https://github.com/RUCAIBox/UniCRS); mirror only"

CATALOG = DatasetSpec(
    name="catalog",
    description=(
        "Movie metadata for enriching the item corpus: MovieLens-1M joined with TMDB and OMDb, and "
        "MovieTweetings titles with IMDb ids (used by redial and inspired)"
    ),
    homepage="",
    license="IMDb/TMDB/OMDb-derived text: personal and research use only",
    files=(
        RemoteFile(
            "catalog/ml1m_tmdb.csv",
            "92c22991202c00500cfb5d5f59e99a3c10b0ead5785eb4517602cac2ad599687",
            2209904,
            None,
            note="MovieLens-1M movies (https://grouplens.org/datasets/movielens/1m/) joined with TMDB "
            "overview, cast, keywords and genres; mirror only",
        ),
        RemoteFile(
            "catalog/ml1m_omdb_extrainfos.dat",
            "18432b1713b66a5262c11f6d929801a6e6f414d861cd2adf191dfba61e45c74d",
            3309481,
            None,
            note="MovieLens-1M movies with OMDb metadata (plot, director, writers, actors); mirror only",
        ),
        RemoteFile(
            "catalog/movietweetings_titles.csv",
            "a783b46f1d71a9b1cbf76a05731d54e23535fc90374dfce0d79a34bc1e7d1a40",
            2700510,
            None,
            note="titles, years and genres from MovieTweetings (https://github.com/sidooms/MovieTweetings); "
            "mirror only",
        ),
    ),
)

REDIAL = DatasetSpec(
    name="redial",
    description="ReDial movie-recommendation dialogues (Li et al. 2018): official test split, "
    "assembled train split, movie catalogue and metadata",
    homepage="https://redialdata.github.io/website/",
    license="dialogues CC BY 4.0; IMDb-derived metadata research use only",
    files=(
        RemoteFile(
            "redial/test_data.jsonl",
            "d7781750787d104ac005e829cc7e6277d25b14644a223b0c2445aaaded6b19ac",
            3790112,
            _REDIAL_ZIP,
            archive_member="test_data.jsonl",
        ),
        RemoteFile(
            "redial/movies_with_mentions.csv",
            "0d408daa474ac95b959a739a261dddd997dd800f5ea585da15a434a26187dbb0",
            226703,
            _REDIAL_ZIP,
            archive_member="movies_with_mentions.csv",
        ),
        RemoteFile(
            "redial/movie_metadata.json",
            "7bdfe9a9c7f1b4d59aa9a5aeba0029071fd5a7232b61c8257212a335ffe424f7",
            2745351,
            None,
            note="IMDb-derived metadata collected for ReDial ids; mirror only",
        ),
        RemoteFile(
            "redial/train_assembled.jsonl",
            "c9fcc94b1b586383dfa0201968f744d60b100b25c2a9c2f86d404caa3d522493",
            18447197,
            None,
            note="merged from public fragments of the official train split, see shared data README; mirror only",
        ),
        RemoteFile(
            "redial/train_inventory.tsv",
            "99df2a4c60b76144b72924030b6460e3268edfe53fdd3a8934cb132703d6a131",
            684262,
            None,
            note="per-record tier and origin of train_assembled.jsonl, see shared data README; mirror only",
        ),
    ),
    requires=("catalog",),
)

INSPIRED = DatasetSpec(
    name="inspired",
    description="INSPIRED sociable movie-recommendation dialogues (Hayati et al. 2020): UniCRS splits "
    "plus the official annotated dev/test release",
    homepage="https://github.com/sweetpeach/Inspired",
    license="no licence file; research use",
    files=(
        RemoteFile(
            "inspired/train_data_dbpedia.jsonl",
            "f185878d61f4cf95036711612befbec2e587b42fcb7bf855fba3af08016e7743",
            3965124,
            None,
            note=_UNICRS_NOTE,
        ),
        RemoteFile(
            "inspired/valid_data_dbpedia.jsonl",
            "8cde8cf7f55d4f2a71f1c7c8e4b921ca9caaee615999fd3728c7bea214b01839",
            484801,
            None,
            note=_UNICRS_NOTE,
        ),
        RemoteFile(
            "inspired/test_data_dbpedia.jsonl",
            "d1ab79e33858224983de938f6401a18fab7bd99bb4580512fbe804459539f593",
            476786,
            None,
            note=_UNICRS_NOTE,
        ),
        RemoteFile(
            "inspired/item_ids.json",
            "6e300dc6b89ab483f1474ee550e94709cdbcd09354928546fa32dc3b48fe12c1",
            7100,
            None,
            note=_UNICRS_NOTE,
        ),
        RemoteFile(
            "inspired/entity2id.json",
            "6ea0f59be9da55a78e2b48eff35928bf62a7232d143eb905d350ed38268583d2",
            1060452,
            None,
            note=_UNICRS_NOTE,
        ),
        RemoteFile(
            "inspired/official/dev.tsv",
            "15a955be002222ba9e95f886802e06a91fb5e457f8a25deae3e7908d58faa947",
            1318247,
            f"{_INSPIRED_RAW}/dev.tsv",
        ),
        RemoteFile(
            "inspired/official/test.tsv",
            "a10f63ff26045158460730d4829ffba74bee86fb744d9f48c1c1c511ef609993",
            1239679,
            f"{_INSPIRED_RAW}/test.tsv",
        ),
        RemoteFile(
            # Not listed in MANIFEST.tsv; sha256 and size taken from the mirror's copy.
            "inspired/official/README.md",
            "b14020eea72755252aa5559160a109ae1cd46372f03d1c32c43d63145b1fe291",
            2410,
            f"{_INSPIRED_RAW}/README.md",
        ),
        RemoteFile(
            "inspired/train_strategy_labels.json",
            "46be88f4ff147854e430421d057278d82ef84da2ce524336f1da2bed93a66a03",
            3984271,
            None,
            note="train dialogues with per-utterance strategy labels and target titles, derived from the "
            "INSPIRED release; mirror only",
        ),
    ),
    requires=("catalog",),
)

MOVIELENS = DatasetSpec(
    name="movielens",
    description="MovieLens latest-small ratings (100,836 ratings, 610 users, 9,742 movies) with IMDb/TMDB links",
    homepage="https://grouplens.org/datasets/movielens/latest/",
    license="GroupLens research-use terms (cite Harper & Konstan 2015); no redistribution",
    files=tuple(
        RemoteFile(
            f"movielens/ml-latest-small/{member}",
            sha,
            size,
            _ML_SMALL_ZIP,
            archive_member=f"ml-latest-small/{member}",
        )
        for member, sha, size in (
            ("ratings.csv", "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646", 2483723),
            ("movies.csv", "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07", 494431),
            ("links.csv", "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31", 197979),
            ("tags.csv", "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d", 118660),
            ("README.txt", "63d22ac138e80fae37021797ed8e1b9424b5239dc576a137422adf783ae3f404", 8342),
        )
    ),
)

OPENDIALKG_BOOKS = DatasetSpec(
    name="opendialkg-books",
    description="OpenDialKG book-recommendation dialogues (Moon et al. 2019): a second, non-movie domain",
    homepage="https://github.com/facebookresearch/opendialkg",
    license="CC BY-NC 4.0",
    files=(
        RemoteFile(
            "opendialkg_books/dialogs.jsonl",
            "e68fb6109ac56ffea10f21bf6350d9e024c7b8ee9abc6a3b2a8e35f31ce3f7f6",
            3058303,
            None,
            note="books subset of OpenDialKG (https://github.com/facebookresearch/opendialkg) converted to "
            "role/text/entity/item turns; mirror only",
        ),
    ),
)

GOODBOOKS = DatasetSpec(
    name="goodbooks-10k",
    description="Book metadata for the opendialkg-books catalogue: 10,000 Goodreads books with authors and "
    "original publication years (goodbooks-10k, Zajac 2017)",
    homepage="https://github.com/zygmuntz/goodbooks-10k",
    license="CC BY-SA 4.0",
    files=(
        RemoteFile(
            # Not listed in MANIFEST.tsv (added to the mirror later); sha256 and size are the mirror's copy's,
            # which is byte for byte books.csv at this commit.
            "catalog/goodbooks10k_books.csv",
            "4d21d0e0433128657c752e3a3d0405ac0ec11675d6c70c64cb0abf4ab1acb76a",
            3286659,
            "https://raw.githubusercontent.com/zygmuntz/goodbooks-10k/6dd165b555a7b47b2dd36743a425776e641ff50c/books.csv",
        ),
    ),
)

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec for spec in (REDIAL, INSPIRED, MOVIELENS, OPENDIALKG_BOOKS, CATALOG, GOODBOOKS)
}


def get_spec(name: str) -> DatasetSpec:
    """Look a dataset up by name; an unknown name raises a DataError listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise DataError(f"unknown dataset {name!r}; known datasets: {known}") from None
