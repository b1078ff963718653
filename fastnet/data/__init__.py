"""Input pipelines: :class:`Dataset` (numpy batches with the tf.data methods Keras code
calls) and the adapters through which ``fit``/``evaluate``/``predict`` read arrays,
generators, :class:`fastnet.utils.PyDataset` and datasets (:mod:`fastnet.data.adapters`)."""
from fastnet.data.dataset import AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset

__all__ = ["Dataset", "AUTOTUNE", "INFINITE_CARDINALITY", "UNKNOWN_CARDINALITY"]
