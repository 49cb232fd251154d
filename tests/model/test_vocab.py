import pytest

from model.vocab import UnknownCharactersError, Vocab


def test_alphabet_is_sorted_with_boundary_first():
    vocab = Vocab.from_words(["emma", "zoe", "bob"])
    assert vocab.alphabet == ".abemoz"
    assert vocab.size == 7
    assert vocab.encode("zoe") == [6, 5, 3]
    assert vocab.decode([6, 5, 3]) == "zoe"


def test_normalise_lowercases_only_without_uppercase_letters():
    assert Vocab.from_words(["anna"]).normalise("  AnNa \n") == "anna"
    mixed = Vocab.from_words(["Anna", "bob"])
    assert mixed.normalise(" Anna ") == "Anna"
    assert mixed.normalise("BOB") == "BOB"


def test_unknown_characters_are_all_named_once():
    vocab = Vocab.from_words(["anna"])
    with pytest.raises(UnknownCharactersError) as err:
        vocab.encode("an3n-a3.")
    assert err.value.unknown == ["3", "-", "."]
    assert "'3'" in str(err.value) and "'-'" in str(err.value) and "'.'" in str(err.value)


def test_words_may_not_contain_the_boundary():
    with pytest.raises(ValueError, match="boundary"):
        Vocab.from_words(["a.b"])
