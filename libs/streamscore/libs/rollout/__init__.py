"""Model rollout: which model decides an entity (canary routing) and whether a canary must be
rolled back (the judge). Pure functions and data; the scorer applies them."""
