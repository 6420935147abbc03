"""The fast single-message TF-IDF transform gives exactly what scikit-learn's transform gives."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from knowledge.ml import fasttfidf
from knowledge.ml.tokenize import default_tokenizer

CORPUS = ["快递到哪了", "发票怎么开", "我要退货退款", "退款多久到账", "手机保修多久", "hello 在吗", "发票 发票 抬头"]
QUERIES = ["发票抬头怎么改", "退货", "", "😀😀", "完全没见过的字眼", "Hello 发票发票发票", CORPUS[0]]


@pytest.mark.parametrize(
    "make",
    [
        lambda: TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True, lowercase=False),
        lambda: TfidfVectorizer(analyzer="char", ngram_range=(2, 3), sublinear_tf=False, dtype=np.float32),
        lambda: TfidfVectorizer(
            tokenizer=default_tokenizer(), token_pattern=None, lowercase=False, ngram_range=(1, 2), sublinear_tf=True
        ),
    ],
)
def test_same_matrix_as_scikit_learn(make):
    vectorizer = make().fit(CORPUS)
    expected = vectorizer.transform(QUERIES)
    got = fasttfidf.transform(vectorizer, QUERIES)
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    np.testing.assert_allclose(got.toarray(), expected.toarray(), rtol=1e-6, atol=1e-7)
    assert got[2].nnz == 0  # the empty message


def test_unsupported_options_use_the_vectorizer_itself():
    vectorizer = TfidfVectorizer(analyzer="char", binary=True, norm="l1").fit(CORPUS)
    got = fasttfidf.transform(vectorizer, QUERIES)
    np.testing.assert_allclose(got.toarray(), vectorizer.transform(QUERIES).toarray())
    assert fasttfidf._prepare(vectorizer) is None
