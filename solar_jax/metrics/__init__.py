"""Metrics as pure functions of arrays: FID/KID, precision/recall, clusters, skill scores,
bootstrap intervals, physical statistics, sample-size rules, memorisation, consistency."""
