"""The open groups of ``flare_list.merge_duplicates``: near-duplicate events joined so far.

A ``Shelf`` keeps open groups sorted by their largest flux so an event finds its
group by bisection (``merge_duplicates``' docstring). Flares are
``flare_list.Flare`` (``peak``, ``peak_flux``, ``noaa_ar``).
"""

from __future__ import annotations

import bisect
import datetime
import math


class Group:
  """Events joined so far: first and last peak, largest flux, AR (0: none yet; never two)."""

  def __init__(self, index: int, flare):
    self.index, self.members = index, [flare]
    self.first = self.last = flare.peak
    self.top, self.ar = flare.peak_flux, flare.noaa_ar
    self.key = None  # its place on a shelf: (top, last, index, self)

  def add(self, flare) -> None:
    self.members.append(flare)
    self.last = flare.peak  # events arrive in peak order
    self.top = max(self.top, flare.peak_flux)
    self.ar = self.ar or flare.noaa_ar  # an event of another AR never joins


def _similarity(flare, top: float) -> float:
  """How far a flare's flux lies from a group's largest (|log ratio|; inf without flux)."""
  if flare.peak_flux > 0 and top > 0:
    return abs(math.log(flare.peak_flux / top))
  return math.inf


class Shelf:
  """Open groups sorted by (largest flux, last peak, creation order).

  ``best`` returns the group ``merge_duplicates`` prefers for an event: the
  smallest |log flux ratio|, then the latest last peak, then the newest group.
  The nearest flux lies next to the event's own in this order, and within one
  flux value the preferred group is the last of its run, so a query costs a
  few bisections.
  """

  def __init__(self):
    self.keys: list[tuple] = []

  def __bool__(self) -> bool:
    return bool(self.keys)

  def add(self, group: Group) -> None:
    group.key = (group.top, group.last, group.index, group)
    bisect.insort(self.keys, group.key)

  def remove(self, group: Group) -> None:
    i = bisect.bisect_left(self.keys, group.key[:3])
    assert self.keys[i][3] is group
    del self.keys[i]

  def best(self, flare) -> Group | None:
    keys = self.keys
    if not keys:
      return None
    if not (flare.peak_flux > 0 and math.isfinite(flare.peak_flux)) or keys[-1][0] <= 0:
      candidates = keys  # no flux to compare: every group ties on it (rare)
    else:
      candidates = []
      split = bisect.bisect_left(keys, (flare.peak_flux,))
      # Upwards: the runs of the smallest flux values >= the event's, while they tie.
      i, nearest = split, None
      while i < len(keys):
        end = bisect.bisect_left(keys, (keys[i][0], _LATEST))
        distance = _similarity(flare, keys[i][0])
        if nearest is not None and distance != nearest:
          break
        nearest = distance
        candidates.append(keys[end - 1])
        i = end
      # Downwards likewise (fluxes <= 0 are never nearest: their distance is inf).
      i, nearest = split, None
      while i > 0 and keys[i - 1][0] > 0:
        distance = _similarity(flare, keys[i - 1][0])
        if nearest is not None and distance != nearest:
          break
        nearest = distance
        candidates.append(keys[i - 1])
        i = bisect.bisect_left(keys, (keys[i - 1][0],))
    best = min(candidates, key=lambda k: (_similarity(flare, k[0]), flare.peak - k[1], -k[2]))
    return best[3]


_LATEST = datetime.datetime.max
