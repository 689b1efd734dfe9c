import pytest

from datasets_app.core.split import split_file, validation_count


def _write(path, count):
    path.write_bytes(b"".join(b'{"row": %d}\n' % i for i in range(count)))
    return path


def _split(tmp_path, source, share, seed, name="a"):
    train, validation = tmp_path / f"{name}-train.jsonl", tmp_path / f"{name}-val.jsonl"
    counts = split_file(source, train_out=train, validation_out=validation, validation_share=share, seed=seed)
    return counts, train.read_bytes().splitlines(), validation.read_bytes().splitlines()


def test_it_splits_the_same_way_for_the_same_seed(tmp_path):
    source = _write(tmp_path / "data.jsonl", 500)

    first = _split(tmp_path, source, 0.1, seed=42, name="first")
    second = _split(tmp_path, source, 0.1, seed=42, name="second")
    other = _split(tmp_path, source, 0.1, seed=43, name="other")

    assert first == second
    assert first[2] != other[2]


def test_it_puts_the_exact_share_in_validation_and_keeps_every_row_once_in_order(tmp_path):
    source = _write(tmp_path / "data.jsonl", 1000)

    (train_rows, validation_rows), train, validation = _split(tmp_path, source, 0.1, seed=7)

    assert (train_rows, validation_rows) == (900, 100)
    assert (len(train), len(validation)) == (900, 100)
    original = source.read_bytes().splitlines()
    assert sorted(train + validation) == sorted(original)
    assert train == [line for line in original if line in set(train)]


@pytest.mark.parametrize(
    ("rows", "share", "expected"),
    [(15, 0.1, 2), (3, 0.01, 1), (2, 0.5, 1), (10, 0.95, 9), (1, 0.5, 0), (100, 0.0, 0), (0, 0.2, 0)],
)
def test_it_rounds_the_validation_count_sensibly(rows, share, expected):
    assert validation_count(rows, share) == expected


def test_it_skips_blank_lines_and_adds_a_missing_final_newline(tmp_path):
    source = tmp_path / "data.jsonl"
    source.write_bytes(b'{"a": 1}\n\n{"a": 2}\n{"a": 3}')

    (train_rows, validation_rows), train, validation = _split(tmp_path, source, 0.34, seed=1)

    assert (train_rows, validation_rows) == (2, 1)
    assert sorted(train + validation) == [b'{"a": 1}', b'{"a": 2}', b'{"a": 3}']
    assert (tmp_path / "a-train.jsonl").read_bytes().endswith(b"\n")


def test_it_rejects_a_share_of_one_or_more(tmp_path):
    with pytest.raises(ValueError, match="validation_share"):
        split_file(
            _write(tmp_path / "d.jsonl", 5),
            train_out=tmp_path / "t",
            validation_out=tmp_path / "v",
            validation_share=1.0,
            seed=1,
        )
