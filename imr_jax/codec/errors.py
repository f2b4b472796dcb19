"""The one exception type of the codec."""


class CodecError(Exception):
  """A video the codec cannot handle; the message names the file and what to do about it."""
