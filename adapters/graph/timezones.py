"""Windows time zone names, which Outlook writes into `originalStartTimeZone`, and their IANA zones.

The table is CLDR's windowsZones mapping for the "001" (primary) territory of each Windows zone,
limited to the zones clinics are likely to use. Graph accepts IANA names on input as well, so an
unknown Windows name on read falls back to UTC times (which Graph gives us anyway with
`Prefer: outlook.timezone="UTC"`) and we keep no zone rather than guessing one.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["WINDOWS_TO_IANA", "iana_to_windows", "to_iana", "zone"]

WINDOWS_TO_IANA: dict[str, str] = {
    "Dateline Standard Time": "Etc/GMT+12",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Alaskan Standard Time": "America/Anchorage",
    "Pacific Standard Time": "America/Los_Angeles",
    "US Mountain Standard Time": "America/Phoenix",
    "Mountain Standard Time": "America/Denver",
    "Central America Standard Time": "America/Guatemala",
    "Central Standard Time": "America/Chicago",
    "Central Standard Time (Mexico)": "America/Mexico_City",
    "Canada Central Standard Time": "America/Regina",
    "SA Pacific Standard Time": "America/Bogota",
    "Eastern Standard Time": "America/New_York",
    "US Eastern Standard Time": "America/Indiana/Indianapolis",
    "Venezuela Standard Time": "America/Caracas",
    "Atlantic Standard Time": "America/Halifax",
    "Central Brazilian Standard Time": "America/Cuiaba",
    "SA Western Standard Time": "America/La_Paz",
    "Pacific SA Standard Time": "America/Santiago",
    "Newfoundland Standard Time": "America/St_Johns",
    "E. South America Standard Time": "America/Sao_Paulo",
    "Argentina Standard Time": "America/Argentina/Buenos_Aires",
    "SA Eastern Standard Time": "America/Cayenne",
    "Montevideo Standard Time": "America/Montevideo",
    "Azores Standard Time": "Atlantic/Azores",
    "Cape Verde Standard Time": "Atlantic/Cape_Verde",
    "UTC": "Etc/UTC",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "Morocco Standard Time": "Africa/Casablanca",
    "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest",
    "Romance Standard Time": "Europe/Paris",
    "Central European Standard Time": "Europe/Warsaw",
    "W. Central Africa Standard Time": "Africa/Lagos",
    "Namibia Standard Time": "Africa/Windhoek",
    "GTB Standard Time": "Europe/Bucharest",
    "Egypt Standard Time": "Africa/Cairo",
    "FLE Standard Time": "Europe/Kiev",
    "Israel Standard Time": "Asia/Jerusalem",
    "South Africa Standard Time": "Africa/Johannesburg",
    "Turkey Standard Time": "Europe/Istanbul",
    "Arabic Standard Time": "Asia/Baghdad",
    "Arab Standard Time": "Asia/Riyadh",
    "Russian Standard Time": "Europe/Moscow",
    "E. Africa Standard Time": "Africa/Nairobi",
    "Iran Standard Time": "Asia/Tehran",
    "Arabian Standard Time": "Asia/Dubai",
    "Afghanistan Standard Time": "Asia/Kabul",
    "Ekaterinburg Standard Time": "Asia/Yekaterinburg",
    "West Asia Standard Time": "Asia/Tashkent",
    "Pakistan Standard Time": "Asia/Karachi",
    "India Standard Time": "Asia/Kolkata",
    "Sri Lanka Standard Time": "Asia/Colombo",
    "Nepal Standard Time": "Asia/Kathmandu",
    "Central Asia Standard Time": "Asia/Almaty",
    "Bangladesh Standard Time": "Asia/Dhaka",
    "Myanmar Standard Time": "Asia/Yangon",
    "SE Asia Standard Time": "Asia/Bangkok",
    "N. Central Asia Standard Time": "Asia/Novosibirsk",
    "North Asia Standard Time": "Asia/Krasnoyarsk",
    "China Standard Time": "Asia/Shanghai",
    "North Asia East Standard Time": "Asia/Irkutsk",
    "Singapore Standard Time": "Asia/Singapore",
    "W. Australia Standard Time": "Australia/Perth",
    "Taipei Standard Time": "Asia/Taipei",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "Yakutsk Standard Time": "Asia/Yakutsk",
    "Cen. Australia Standard Time": "Australia/Adelaide",
    "AUS Central Standard Time": "Australia/Darwin",
    "E. Australia Standard Time": "Australia/Brisbane",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "West Pacific Standard Time": "Pacific/Port_Moresby",
    "Tasmania Standard Time": "Australia/Hobart",
    "Vladivostok Standard Time": "Asia/Vladivostok",
    "Magadan Standard Time": "Asia/Magadan",
    "New Zealand Standard Time": "Pacific/Auckland",
    "Fiji Standard Time": "Pacific/Fiji",
    "Tonga Standard Time": "Pacific/Tongatapu",
    "Samoa Standard Time": "Pacific/Apia",
}

_IANA_TO_WINDOWS: dict[str, str] = {iana: win for win, iana in WINDOWS_TO_IANA.items()}
# Common aliases that CLDR lists beside the primary zone.
_IANA_TO_WINDOWS.update(
    {
        "UTC": "UTC",
        "Etc/GMT": "UTC",
        "GMT": "UTC",
        "Europe/Dublin": "GMT Standard Time",
        "Europe/Lisbon": "GMT Standard Time",
        "Europe/Amsterdam": "W. Europe Standard Time",
        "Europe/Rome": "W. Europe Standard Time",
        "Europe/Vienna": "W. Europe Standard Time",
        "Europe/Zurich": "W. Europe Standard Time",
        "Europe/Stockholm": "W. Europe Standard Time",
        "Europe/Oslo": "W. Europe Standard Time",
        "Europe/Madrid": "Romance Standard Time",
        "Europe/Brussels": "Romance Standard Time",
        "Europe/Copenhagen": "Romance Standard Time",
        "Europe/Prague": "Central Europe Standard Time",
        "Europe/Helsinki": "FLE Standard Time",
        "Europe/Kyiv": "FLE Standard Time",
        "Europe/Athens": "GTB Standard Time",
        "America/Toronto": "Eastern Standard Time",
        "America/Detroit": "Eastern Standard Time",
        "America/Vancouver": "Pacific Standard Time",
        "America/Edmonton": "Mountain Standard Time",
        "America/Winnipeg": "Central Standard Time",
        "Asia/Calcutta": "India Standard Time",
        "Asia/Hong_Kong": "China Standard Time",
        "Australia/Melbourne": "AUS Eastern Standard Time",
        "Australia/Canberra": "AUS Eastern Standard Time",
    }
)


def to_iana(name: str | None) -> str | None:
    """The IANA zone for a Windows or IANA zone name; None when it is unknown or empty."""
    if not name:
        return None
    if name in WINDOWS_TO_IANA:
        return WINDOWS_TO_IANA[name]
    if "/" in name or name == "UTC":
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return None
        return name
    return None


def iana_to_windows(name: str | None) -> str | None:
    """The Windows zone name for an IANA zone, or None when the table has none."""
    if not name:
        return None
    return _IANA_TO_WINDOWS.get(name)


def zone(name: str | None) -> ZoneInfo | None:
    """A ZoneInfo for a Windows or IANA zone name, or None."""
    iana = to_iana(name)
    return ZoneInfo(iana) if iana else None
