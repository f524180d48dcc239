"""A worker that kept a session's engine state and one that rebuilds it from the stored
answers choose the same next item (the claim behind "any worker serves any session")."""

import numpy as np

from irtcat.delivery.sessions import Delivery


def test_kept_and_rebuilt_sessions_choose_the_same_items(api, rng):
    serving = api.app.extensions["irtcat"]["delivery"]
    other = Delivery(api.store)                           # another worker: nothing cached
    # randomesque: each step's random choice must come out alike on both paths.
    api.call("POST", "/v1/tests", api.admin, json={
        "id": "random", "standards": ["AI-ML", "AI-DE"],
        "config": {"selection": {"randomesque": 5}, "pretest": {"count": 2},
                   "stop": {"min_items": 8, "max_items": 15, "se": 0.3}}})
    for _ in range(3):
        session = api.start("random")
        item = session["item"]
        while item is not None:
            response = item["options"][int(rng.integers(len(item["options"])))]["id"]
            state = api.answer(session, item["item_id"], response).json
            row, answers = other._snapshot(session["session_id"])
            built = other._session_bank(row, answers)
            batch = other._rebuild(built, row, answers)
            rebuilt = batch.next_item()
            if state["status"] == "finished":
                assert rebuilt is None
            else:
                assert built.items[rebuilt]["id"] == state["item"]["item_id"]
                kept = serving._live[session["session_id"]]
                assert kept.position == state["position"]    # the next answer reuses it
                assert kept.current_item == state["item"]["item_id"]
                kept_state, rebuilt_state = kept.batch.result(), batch.result()
                np.testing.assert_allclose(kept_state.theta, rebuilt_state.theta, atol=1e-12)
                assert kept_state.items == rebuilt_state.items
            item = state["item"]
