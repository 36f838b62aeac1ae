"""SQLModel tables, one module per aggregate. Importing this package registers them all."""

from sqlmodel import SQLModel

# Deterministic constraint names, so Alembic (and SQLite batch mode) can address them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

from helpdesk.models import search as _search
from helpdesk.models.audit import AuditEvent
from helpdesk.models.canned import CannedReply
from helpdesk.models.inbound import InboundMail, MailboxCursor
from helpdesk.models.learners import Enrolment, Learner
from helpdesk.models.merges import TicketMerge
from helpdesk.models.messages import Attachment, Message
from helpdesk.models.operators import ApiToken, Operator, OperatorSession, SignInFailure
from helpdesk.models.orders import Order
from helpdesk.models.outbound import OutboundEmail, SuppressedAddress
from helpdesk.models.privacy import PlatformEvent, PrivacyLink, PrivacyRedaction, PrivacyRequest
from helpdesk.models.retention import JobLease, RetentionRun, TicketTombstone
from helpdesk.models.tickets import Ticket, TicketNumber, TicketOrder
from helpdesk.models.widget import VerificationCode, WidgetConversation

# Full-text search objects (FTS5 tables, tsvector columns) come with create_all.
_search.register(SQLModel.metadata)

__all__ = [
    "ApiToken",
    "Attachment",
    "AuditEvent",
    "CannedReply",
    "Enrolment",
    "InboundMail",
    "JobLease",
    "Learner",
    "MailboxCursor",
    "Message",
    "Operator",
    "OperatorSession",
    "Order",
    "OutboundEmail",
    "PlatformEvent",
    "PrivacyLink",
    "PrivacyRedaction",
    "PrivacyRequest",
    "RetentionRun",
    "SignInFailure",
    "SuppressedAddress",
    "Ticket",
    "TicketTombstone",
    "TicketMerge",
    "TicketNumber",
    "TicketOrder",
    "VerificationCode",
    "WidgetConversation",
]
