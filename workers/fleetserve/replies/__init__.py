"""Reading replies back: filters for relabeling jobs and a tail that resumes where it stopped."""

from fleetserve.replies.filters import ReplyFilter
from fleetserve.replies.tail import TailedReply, TailOptions, tail_replies

__all__ = ["ReplyFilter", "TailOptions", "TailedReply", "tail_replies"]
