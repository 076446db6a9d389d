"""Old home of `prepare_face` / `prepare_faces`, now in `ferops.runtime.decode` (the one image decoder).

Kept as a re-export because user code and benchmarks import ``ferops.runtime.preprocess``.
"""

from ferops.runtime.decode import FACE_SIZE, prepare_face, prepare_faces

__all__ = ["FACE_SIZE", "prepare_face", "prepare_faces"]
