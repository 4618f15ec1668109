"""The name features ``charcnn`` adds to plain character convolutions.

The layer works on the encoded indices inside the graph, so the serving input
stays one int32 matrix and every caller (stream processor, dashboard, CLI,
exported SavedModel) gets the features for free. It counts padding as padding, so a score
never depends on how much padding a batch carries (see
:mod:`dnsentinel.models.encoding`).

Why: global max pooling only says *whether* an n-gram occurs
somewhere. It cannot tell a random string in the registrable label
(``xkqjzvw.com``, a DGA) from the same string in a CDN host label
(``xkqjzvw.cdn.example.net``), and it cannot count: how long a label is, or
how much of a name looks random. Those are exactly what tell many DGA families
apart from the random-looking names on popularity lists.
"""

from __future__ import annotations

import keras
from keras import ops

from dnsentinel.models import encoding

_DOT = encoding.ALPHABET.index(".") + 1
_DIGIT0 = encoding.ALPHABET.index("0") + 1
_HYPHEN = encoding.ALPHABET.index("-") + 1
LABEL_POSITIONS = 5
"""Label position ids: 0 the TLD, 1 the label left of it, 2 the next, 3 anything further left, 4 padding."""


@keras.saving.register_keras_serializable(package="dnsentinel")
class NameShape(keras.layers.Layer):
    """Per character: which label it sits in, counted from the right; per name: a few shape numbers.

    Returns ``(positions, shape)``: ``positions`` (batch, length) int32 in
    ``[0, LABEL_POSITIONS)``, and ``shape`` (batch, 5) float32: length, number
    of dots, length of the label left of the TLD, share of digits, number of
    hyphens, each scaled to about [0, 1].
    """

    def call(self, chars):
        is_dot = ops.cast(ops.equal(chars, _DOT), "int32")
        dots_right = ops.flip(ops.cumsum(ops.flip(is_dot, 1), axis=1), 1)
        positions = ops.where(ops.equal(chars, encoding.PAD), LABEL_POSITIONS - 1, ops.minimum(dots_right, 3))
        length = ops.sum(ops.cast(ops.not_equal(chars, encoding.PAD), "float32"), axis=1)
        dots = ops.sum(ops.cast(is_dot, "float32"), axis=1)
        second_label = ops.sum(ops.cast(ops.equal(positions, 1), "float32"), axis=1) - ops.minimum(dots, 1.0)
        digits = ops.sum(ops.cast((chars >= _DIGIT0) & (chars < _DIGIT0 + 10), "float32"), axis=1)
        hyphens = ops.sum(ops.cast(ops.equal(chars, _HYPHEN), "float32"), axis=1)
        shape = ops.stack(
            [length / 32.0, dots / 4.0, second_label / 16.0, digits / ops.maximum(length, 1.0), hyphens / 4.0],
            axis=1,
        )
        return positions, shape

