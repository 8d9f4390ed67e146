"""README's settings list names every variable of ``config.py``'s table (a new-user trial found five
missing: a setting a user cannot find is one they cannot set)."""
import re
from pathlib import Path

from opex_operator.config import __doc__ as SETTINGS_TABLE

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_of_the_config_table_is_named_in_the_readme():
    settings = set(re.findall(r"\bOPEX_[A-Z_]+[A-Z]\b", SETTINGS_TABLE))
    assert len(settings) > 30
    assert sorted(s for s in settings if s not in README.read_text()) == []
