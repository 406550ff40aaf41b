"""Hypothesis strategies for OTLP attribute values, shared by the fuzzers and the differential validation tests."""

from __future__ import annotations

from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList


def any_values(texts: st.SearchStrategy[str], *, max_bytes: int, max_leaves: int) -> st.SearchStrategy[AnyValue]:
    """Any OTLP `AnyValue`: scalars (strings from `texts`) nested in arrays and key-value lists."""
    scalars = st.one_of(
        texts.map(lambda s: AnyValue(string_value=s)),
        st.integers(-(2**63), 2**63 - 1).map(lambda n: AnyValue(int_value=n)),
        st.booleans().map(lambda b: AnyValue(bool_value=b)),
        st.binary(max_size=max_bytes).map(lambda b: AnyValue(bytes_value=b)),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3).map(lambda vs: AnyValue(array_value=ArrayValue(values=vs))),
            st.lists(st.tuples(texts, inner), max_size=3).map(
                lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs]))
            ),
        ),
        max_leaves=max_leaves,
    )
