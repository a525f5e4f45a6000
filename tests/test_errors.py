"""solar_jax.errors: exit codes of the failures a user can act on."""

import errno

from solar_jax import errors


def test_environment_failures_exit_3_through_wrapped_causes():
  full = OSError(errno.ENOSPC, "No space left on device", "/w/checkpoints/4")
  try:
    try:
      raise full
    except OSError as e:
      raise RuntimeError("orbax: save failed") from e
  except RuntimeError as wrapped:
    assert errors.environment_failure(wrapped) is full
    assert errors.exit_code(wrapped) == 3
  assert errors.exit_code(OSError(errno.ENOENT, "no such file")) is None  # Not the machine.
  # TensorStore (orbax's writer) reports it as text.
  text = ValueError(
    'RESOURCE_EXHAUSTED: Error writing local file "/w/checkpoints/4/x": Failed to write 118 '
    "bytes to file 8: No space left on device [os_error_code='28']"
  )
  failure = errors.environment_failure(text)
  assert failure.errno == errno.ENOSPC and failure.filename == "/w/checkpoints/4/x"
