"""Constrained sampling: names drawn from the shaped model conditioned on a regular language.

`spec` validates what a request asks; `regex` and `automaton` compile it into one DFA;
`language` adds the prefix and the length window and decides emptiness; `exact` draws from a
table model's exact conditional (a backward pass over contexts x automaton states x positions);
`twist`, `smc` and `rejection` serve every other source; `planner` chooses among them within a
per-request budget.
"""
