"""Names shared between enrollment and the apps built on it.

enrollment imports nothing from events or settlements (imports point one way), so the
baseline preset names a program may choose are listed here, with the weekend and holiday
variant the presets define for a weekday method; a settlements test keeps them equal to
``settlements.baselines.PRESETS`` and its day types. Likewise the SNPP port: enrollment checks
a participant's SNPP server at the port the pager channel (``events.channels.snpp``) will
connect to.
"""

from types import MappingProxyType

BASELINE_PRESETS = (
    "caiso_10_of_10",
    "caiso_weekend_4_of_4",
    "pjm_high_4_of_5",
    "pjm_weekend_high_2_of_3",
    "nyiso_high_5_of_10",
    "nyiso_weekend_high_2_of_3",
    "ercot_middle_8_of_10",
)

#: A weekday method -> the weekend and holiday method its source publishes beside it.
#: ERCOT's "middle 8 of 10" has none: it already takes like days ("same").
WEEKEND_BASELINE_VARIANTS = MappingProxyType(
    {
        "caiso_10_of_10": "caiso_weekend_4_of_4",
        "pjm_high_4_of_5": "pjm_weekend_high_2_of_3",
        "nyiso_high_5_of_10": "nyiso_weekend_high_2_of_3",
    }
)

WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

#: IANA's port for SNPP (RFC 1861): the port of an SNPP server address that names none.
SNPP_DEFAULT_PORT = 444
