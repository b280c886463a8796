"""CHARM's quality dimensions (HARPO part 2): relevance learned by a second-stage ranker
(:mod:`convrec.agent.quality.relevance`, ``learned-ranker`` in the registry) over candidate features
(:mod:`convrec.agent.quality.features`)."""
