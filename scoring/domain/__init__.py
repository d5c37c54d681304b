"""The policy domain: pure functions from scores and records to tiers, supervision limits and plans.

- :mod:`~scoring.domain.policy` — the policy file (``policy.toml``) loaded into frozen dataclasses;
- :mod:`~scoring.domain.tiers` — quota tiers, vetoes (一票否决), hysteresis, manual overrides applied;
- :mod:`~scoring.domain.supervision` — modes, yearly caps, floors, quiet periods per enterprise;
- :mod:`~scoring.domain.planning` — the month's inspection plan and its seeded double-random draw (双随机);
- :mod:`~scoring.domain.monitoring` — stability, migration, capture and fairness figures;
- :mod:`~scoring.domain.simulate` — the closed-loop check of the planner against a synthetic world's truth.

Nothing here opens a database or reads the clock: the as-of date is always an argument.
"""
