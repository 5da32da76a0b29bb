"""Platform-free view models: what a command's answer *is*, not how a platform draws it.

bot/commands returns one of these; bot/slack renders it as Block Kit and bot/teams as an Adaptive
Card. Views hold display-ready strings (times already formatted in the practice's zone) and typed
card actions (`bot.commands.actions`), never platform JSON, so both renderers show the same thing.
"""

from __future__ import annotations

from bot.views.models import (
    Agenda,
    AgendaItem,
    AppointmentDetail,
    ConfirmCancel,
    ConflictCard,
    ConflictList,
    ConnectInfo,
    ConnectionState,
    DoubleBookingCard,
    Error,
    FollowUp,
    FollowUpRequest,
    Help,
    HelpEntry,
    LeadCardView,
    LeadList,
    LeadSlotChoice,
    Notice,
    Reconnect,
    ReminderCard,
    ReminderHealth,
    RescheduleForm,
    ShiftMappingCard,
    ShiftPersonLine,
    ShiftPublishCard,
    StaffCard,
    StaffMember,
    Status,
    View,
    Whoami,
)

__all__ = [
    "Agenda",
    "AgendaItem",
    "AppointmentDetail",
    "ConfirmCancel",
    "ConflictCard",
    "ConflictList",
    "ConnectInfo",
    "ConnectionState",
    "DoubleBookingCard",
    "Error",
    "FollowUp",
    "FollowUpRequest",
    "Help",
    "HelpEntry",
    "LeadCardView",
    "LeadList",
    "LeadSlotChoice",
    "Notice",
    "Reconnect",
    "ReminderCard",
    "ReminderHealth",
    "RescheduleForm",
    "ShiftMappingCard",
    "ShiftPersonLine",
    "ShiftPublishCard",
    "StaffCard",
    "StaffMember",
    "Status",
    "View",
    "Whoami",
]
