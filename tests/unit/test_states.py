from core.states import TERMINAL, TRANSITIONS, State


def test_no_event_moves_an_operation_out_of_a_terminal_state() -> None:
    for moves in TRANSITIONS.values():
        assert not TERMINAL & moves.keys()


def test_every_state_is_reachable_from_pending() -> None:
    reached, frontier = {State.PENDING}, [State.PENDING]
    while frontier:
        state = frontier.pop()
        for moves in TRANSITIONS.values():
            target = moves.get(state)
            if target is not None and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(State)


def test_every_non_terminal_state_can_be_cancelled_or_finish() -> None:
    for state in set(State) - TERMINAL:
        ends = {moves[state] for moves in TRANSITIONS.values() if state in moves}
        assert ends & TERMINAL, state
