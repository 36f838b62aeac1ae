"""The learner support widget and the no-JavaScript web form (issue 6)."""
