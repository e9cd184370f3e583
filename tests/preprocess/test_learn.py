"""The classifier, its stored scores and model, the review queue, accept-above, the exports and the CLI."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from preprocess import learn
from preprocess.collection import Collection
from preprocess.labels import LabelStore
from preprocess.learn.review import estimate_precision, make_queue
from preprocess.predictions_export import detection_tables, model_file, predictions_table


@pytest.fixture(scope="module")
def dev_birdnet(dev_collection_path, tmp_path_factory):
    from preprocess.features import run_extractor

    root = tmp_path_factory.mktemp("learn") / "dev"
    shutil.copytree(dev_collection_path, root)
    run_extractor(Collection.open(root), "birdnet")
    return root


def _truth(coll):
    clips, recs = coll.clips(), coll.recordings().set_index("recording_id")
    labels = recs["label"].reindex(clips["recording_id"]).to_numpy()
    names, y = np.unique(labels, return_inverse=True)
    return names, y


def _five_per_class(y, seed):
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(np.flatnonzero(y == k), size=min(5, max(1, (y == k).sum() - 1)), replace=False))
            for k in range(y.max() + 1)]  # fmt: skip


@pytest.fixture
def labelled(dev_birdnet, tmp_path):
    root = tmp_path / "dev"
    shutil.copytree(dev_birdnet, root)
    coll = Collection.open(root)
    names, y = _truth(coll)
    members = _five_per_class(y, 0)
    with LabelStore.open(coll) as store:
        ids = [store.create_class(str(n))["class_id"] for n in names]
        for cid, m in zip(ids, members, strict=True):
            store.add_members(cid, m)
    return coll, names, y, members, ids


def test_five_per_species_about_as_good_as_plain_logistic_regression(dev_birdnet):
    from sklearn.linear_model import LogisticRegression

    coll = Collection.open(dev_birdnet)
    x = np.asarray(coll.features("birdnet"))
    names, y = _truth(coll)
    ours_top, ours_pred, theirs = [], [], []
    for seed in range(2):
        members = _five_per_class(y, seed)
        train = np.concatenate(members)
        test = np.setdiff1d(np.arange(len(y)), train)
        model, scores = learn.fit(x, members)
        ours_top.append(np.mean(scores[test].argmax(1) == y[test]))
        ours_pred.append(np.mean(model.predict(scores[test]) == y[test]))
        lr = LogisticRegression(max_iter=2000).fit(x[train], y[train])
        theirs.append(np.mean(lr.predict(x[test]) == y[test]))
    assert np.mean(theirs) > 0.8  # the embeddings separate these species: the comparison means something
    assert np.mean(ours_top) >= np.mean(theirs) - 0.03  # the best-scoring class
    assert np.mean(ours_pred) >= np.mean(theirs) - 0.08  # `predicted`: only classes passing their threshold


def test_train_stores_scores_model_and_history(labelled):
    coll, names, y, members, ids = labelled
    model, scores = learn.train(coll)
    assert scores.shape == (len(y), len(names)) and scores.dtype == np.float32
    assert (scores >= 0).all() and (scores <= 1).all()
    meta = json.loads((coll.learn_dir / "model.json").read_text())
    assert meta["round"] == 1 and meta["class_ids"] == ids and len(meta["thresholds"]) == len(names)
    for m in model.metrics:
        assert {"ap", "threshold", "precision", "recall", "delta"} <= set(m)
    again = learn.load_model(coll)
    np.testing.assert_allclose(again.scores(coll.features("birdnet")), scores, atol=1e-5)
    np.testing.assert_array_equal(learn.load_scores(coll), scores)
    # scoring clips "added later" rewrites their rows with the saved model
    np.save(coll.learn_dir / "scores.npy", np.zeros_like(scores))
    new = learn.score_new(coll, [3, 4])
    np.testing.assert_allclose(new, scores[[3, 4]], atol=1e-5)
    assert np.allclose(learn.load_scores(coll)[[3, 4]], scores[[3, 4]], atol=1e-5)
    # a second round records the change
    with LabelStore.open(coll) as store:
        store.add_members(ids[3], np.flatnonzero(y == 3)[5:9])
    model2, _ = learn.train(coll)
    assert model2.info["round"] == 2
    assert model2.metrics[3]["delta"]["ap"] is not None
    assert [h["round"] for h in json.loads((coll.learn_dir / "model.json").read_text())["history"]] == [1, 2]


def test_negatives_train_as_negatives(labelled):
    coll, names, y, members, ids = labelled
    _, before = learn.train(coll)
    c = 5
    wrong = np.argsort(-before[:, c])
    wrong = [int(i) for i in wrong if y[i] != c and i not in members[c]][:5]
    with LabelStore.open(coll) as store:
        store.add_negatives(ids[c], wrong)
    _, after = learn.train(coll)
    assert after[wrong, c].mean() < before[wrong, c].mean()


def test_review_queue_mixes_strategies_and_records_bins(labelled):
    coll, names, y, members, ids = labelled
    learn.train(coll)
    items = learn.review_queue(coll, ids[2], n=20, random_state=1)
    assert len(items) == 20
    labelled_ids = set(np.concatenate(members).tolist())
    assert not labelled_ids & {it["clip_id"] for it in items}
    assert len({it["clip_id"] for it in items}) == 20
    by = {s: [it for it in items if it["strategy"] == s] for s in ("top", "uncertain", "random")}
    assert [len(by[s]) for s in ("top", "uncertain", "random")] == [10, 6, 4]
    scores = learn.load_scores(coll)[:, 2]
    cand = np.setdiff1d(np.arange(len(y)), list(labelled_ids))
    queued = {it["clip_id"] for it in items}
    rest = [c for c in cand if c not in queued]
    assert min(it["score"] for it in by["top"]) >= scores[rest].max()  # top = best not drawn at random
    thr = float(learn.load_model(coll).thresholds[2])
    gaps = sorted(abs(it["score"] - thr) for it in by["uncertain"])
    assert gaps[-1] <= np.sort(np.abs(scores[rest] - thr))[0] + 1e-6  # uncertain = nearest the threshold
    for it in by["random"]:
        assert it["weight"] == it["bin_size"] / it["bin_draws"] and it["round"] == 1
    assert learn.review_queue(coll, ids[2], n=20, random_state=1) == items  # seeded


def test_estimate_precision_is_unbiased_with_inverse_probability_weights():
    rng = np.random.default_rng(0)
    n = 20000
    scores = rng.uniform(0, 1, n).astype(np.float32)
    truth = rng.uniform(0, 1, n) < scores**2  # precision rises with the score
    thr = 0.6
    true_precision = truth[scores >= thr].mean()
    estimates = []
    for seed in range(200):
        items = make_queue(scores, thr, np.arange(n), n=40, mix=(0.0, 0.0, 1.0), n_bins=4, random_state=seed)
        est = estimate_precision(items, {it["clip_id"]: bool(truth[it["clip_id"]]) for it in items}, thr)
        estimates.append(est["precision"])
    assert abs(np.mean(estimates) - true_precision) < 0.02
    # a naive mean over the top-scoring items would overestimate it
    top = make_queue(scores, thr, np.arange(n), n=40, mix=(1.0, 0.0, 0.0))
    assert np.mean([truth[it["clip_id"]] for it in top]) > true_precision + 0.1


def test_accept_above_is_one_undo_step_with_provenance(labelled):
    coll, names, y, members, ids = labelled
    model, scores = learn.train(coll)
    change = learn.accept_above(coll, ids[0])
    with LabelStore.open(coll) as store:
        src = [s for s in store.sources(ids[0]) if s["kind"] == "accept-above"]
        if change["n"]:
            assert src[0]["threshold"] == pytest.approx(float(model.thresholds[0])) and src[0]["round"] == 1
            store.undo()
        assert store.members()[ids[0]].tolist() == members[0].tolist()


def test_exports_and_cli(labelled, tmp_path):
    coll, names, y, members, ids = labelled
    out = tmp_path / "pred.csv"
    res = subprocess.run(
        [sys.executable, "-m", "preprocess", "classify", str(coll.root), "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "AP" in res.stdout and names[3] in res.stdout
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == len(y)
    assert list(rows[0])[:3] == ["clip_id", "predicted", "user_label"] and list(rows[0])[3:] == list(names)
    for r in rows[:20]:
        s = np.array([float(r[n]) for n in names])
        assert ((s >= 0) & (s <= 1)).all()
        assert r["predicted"] in ("", *names)
    labelled_ids = set(np.concatenate(members).tolist())
    assert {int(r["clip_id"]) for r in rows if r["user_label"] == "True"} == labelled_ids
    table = predictions_table(coll)
    assert (table["predicted"] != "").mean() > 0.5
    files = detection_tables(coll)
    first = next(iter(files.values())).splitlines()
    assert first[0].split("\t")[7:9] == ["Annotation", "Score"] and len(first) > 1
    with np.load(io.BytesIO(model_file(coll))) as z:
        meta = json.loads(str(z["meta"]))
        assert z["weights"].shape == (1024, len(names)) and meta["class_names"] == list(names)


def test_suspects_are_the_members_with_the_lowest_held_out_scores():
    scores = np.linspace(0, 1, 100, dtype=np.float32)
    members = np.arange(50, 100)
    held_out = np.full(100, np.nan, np.float32)
    held_out[members] = 1.0
    held_out[[60, 70, 80]] = [0.1, 0.2, 0.05]  # the model, not having seen them, doubts these three
    cand = np.arange(0, 50)
    items = make_queue(scores, 0.5, cand, n=4, suspects=members, suspect_scores=held_out, n_suspect=3)
    sus = [it["clip_id"] for it in items if it["strategy"] == "suspect"]
    assert sus == [80, 60, 70] and items[0]["strategy"] == "suspect"
    assert len([it for it in items if it["strategy"] != "suspect"]) == 4
    assert not {it["clip_id"] for it in items if it["strategy"] != "suspect"} & set(members.tolist())


def test_cross_validation_does_not_leak_held_out_labels():
    # more dimensions than labelled clips: the final model memorises random labels, the CV folds must not
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 256)).astype(np.float32)
    labelled = rng.choice(600, size=200, replace=False)
    random_class = np.sort(labelled[:50])  # 50 of the 200 labelled clips, at random: prevalence 0.25
    rest = np.sort(labelled[50:])
    model, scores = learn.fit(x, [random_class, rest])
    ap_cv = model.metrics[0]["ap"]
    y = np.isin(labelled, random_class)
    ap_fit = learn.classifier.average_precision(y, scores[labelled, 0])
    assert ap_fit > 0.95  # the final fit has seen them all: memorised
    assert abs(ap_cv - 0.25) < 0.12  # held out: near the prevalence, as random labels must be


def test_average_precision_matches_scikit_learn():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(1)
    for _ in range(20):
        y = rng.uniform(size=300) < 0.3
        s = np.round(rng.uniform(size=300) + 0.3 * y, 1)  # many ties
        assert learn.classifier.average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_heads_in_one_batch_are_independent_problems():
    from preprocess.learn.lbfgs import fit_heads

    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 40)).astype(np.float32)
    y = (x[:, :3] + 0.5 * rng.normal(size=(300, 3)) > 0).astype(np.float32)
    w = rng.uniform(0, 1, size=(300, 3)).astype(np.float32)
    w[:100, 1] = 0  # head 1 ignores the first 100 rows, like a cross-validation fold
    wb, bb, _ = fit_heads(x, y, w, l2=1e-2, tol=1e-9, max_iter=300)
    for h in range(3):
        wh, bh, _ = fit_heads(x, y[:, [h]], w[:, [h]], l2=1e-2, tol=1e-9, max_iter=300)
        np.testing.assert_allclose(wb[:, h], wh[:, 0], atol=2e-3)
        assert bb[h] == pytest.approx(bh[0], abs=2e-3)
    # and a head's solution does not depend on rows it gives weight 0
    y2 = y.copy()
    y2[:100, 1] = 1 - y2[:100, 1]
    w2, b2, _ = fit_heads(x, y2[:, [1]], w[:, [1]], l2=1e-2, tol=1e-9, max_iter=300)
    np.testing.assert_allclose(w2[:, 0], wb[:, 1], atol=2e-3)
