import numpy as np
import pytest

from convrec.catalog.items import Catalog, Item
from convrec.data.model import Dialogue, Turn, samples_from_dialogue
from convrec.evaluate.protocol import Protocol, select_samples
from convrec.evaluate.runner import evaluate


@pytest.fixture
def tiny():
    catalog = Catalog([Item(str(i), f"Movie {i}", 2000 + i, {"genre": ["g" + str(i % 2)]}) for i in range(6)])
    dialogue = Dialogue("d1", "test", [
        Turn("seeker", "I liked Movie 0", ("0",)),
        Turn("recommender", "Try Movie 1 or Movie 0 again", ("1", "0")),
        Turn("seeker", "seen 1"),
        Turn("recommender", "Then Movie 2", ("2",)),
    ])
    return catalog, samples_from_dialogue(dialogue)


def test_dedup_removes_target_in_context_samples(tiny):
    _, samples = tiny
    assert [s.target for s in samples] == ["1", "0", "2"]
    assert [s.target for s in select_samples(samples, Protocol.DEDUP)] == ["1", "2"]
    assert len(select_samples(samples, Protocol.STANDARD)) == 3


def test_runner_masks_context_items_under_dedup(tiny):
    catalog, samples = tiny
    counts = np.ones(len(catalog))

    def prefers_context(batch):
        # item 0 (always in context) scores highest, then the ids in descending order
        scores = np.tile(np.arange(len(catalog), 0, -1, dtype=np.float32), (len(batch), 1))
        scores[:, 0] = 100.0
        return scores

    standard = evaluate(prefers_context, samples, catalog, Protocol.STANDARD, counts, dataset="t", split="test",
                        recommender="x", progress=False)
    dedup = evaluate(prefers_context, samples, catalog, Protocol.DEDUP, counts, dataset="t", split="test",
                     recommender="x", progress=False)
    # standard: targets 1 (rank 2), 0 (rank 1), 2 (rank 3)
    assert standard.n_samples == 3
    assert standard.metrics["mrr"] == pytest.approx((1 / 2 + 1 + 1 / 3) / 3)
    # dedup: sample for target 0 removed; items 0 and (for the 2nd) 1 excluded -> target 1 rank 1, target 2 rank 1
    assert dedup.n_samples == 2
    assert dedup.metrics["recall@1"] == pytest.approx(1.0)
    assert dedup.stderr["recall@1"] == pytest.approx(0.0)
    record = dedup.to_json()
    for key in ("dataset", "split", "protocol", "recommender", "n_samples", "metrics", "stderr", "config", "data_hash"):
        assert key in record


def test_runner_rejects_wrong_score_shape(tiny):
    catalog, samples = tiny
    with pytest.raises(ValueError, match="shape"):
        evaluate(lambda b: np.zeros((len(b), 2)), samples, catalog, Protocol.STANDARD, np.ones(6), dataset="t",
                 split="test", recommender="x", progress=False)


def test_accuracy_is_split_by_the_targets_popularity(tiny):
    catalog, samples = tiny  # targets 1, 0, 2
    counts = np.array([50.0, 1.0, 2.0, 3.0, 4.0, 5.0])  # item 0 is the only head item (top 20% of 6 items)

    def ranks_zero_then_two(batch):
        return np.tile(np.array([6.0, 1.0, 5.0, 4.0, 3.0, 2.0], dtype=np.float32), (len(batch), 1))

    result = evaluate(ranks_zero_then_two, samples, catalog, Protocol.STANDARD, counts, dataset="t", split="test",
                      recommender="x", progress=False)
    # target 0 (head) at rank 1; targets 1 (rank 6) and 2 (rank 2) are tail items
    assert result.metrics["head:recall@10"] == pytest.approx(1.0) and result.metrics["head:ndcg@10"] == 1.0
    assert result.metrics["tail:ndcg@10"] == pytest.approx((1 / np.log2(7) + 1 / np.log2(3)) / 2)
    assert result.metrics["recall@10"] == pytest.approx(1.0)


def test_experiment_columns_are_checked(tmp_path):
    from convrec.evaluate.experiment import load_experiment
    from convrec.io import DataError

    path = tmp_path / "x.toml"
    path.write_text('columns = ["ndcg@5", "tail:recall@10"]\n')
    assert load_experiment(path).columns == ["ndcg@5", "tail:recall@10"]
    path.write_text('columns = ["ndgc@10"]\n')
    with pytest.raises(DataError, match="ndgc@10"):
        load_experiment(path)
