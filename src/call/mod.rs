//! Call control: the B2BUA (back-to-back user agent).
//!
//! A citizen's call is two legs with nothing in common on the wire: the
//! **A leg** toward the carrier (we are its UAS) and the **B leg** toward
//! the destination (we are its UAC). Each has its own Call-ID, tags, CSeq
//! space, Via and Contact; only the session description (SDP) and a few
//! end-to-end facts (the caller's number, the reason a call failed) cross
//! from one to the other. Nothing of one side's topology (Via,
//! Record-Route, Contact, internal addresses) reaches the other.
//!
//! State data lives in its state (CONVENTIONS §5): see [`CallState`].

pub mod admission;
pub mod b2bua;
pub mod keepalive;
pub mod media;
pub mod record;

use crate::ids::{CallId, TsxId};
use crate::pii::Pii;
use crate::sip::dialog::Dialog;
use crate::sip::transaction::Peer;
use crate::time::Instant;

/// Which leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Toward the caller (carrier trunk); we are UAS.
    A,
    /// Toward the destination; we are UAC.
    B,
}

impl Side {
    /// The other leg.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// Why a call ended: the cause the call record (a later issue) will carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndCause {
    /// A side hung up after answer.
    HangUp(Side),
    /// The caller cancelled before answer.
    CallerCancelled,
    /// The destination refused with a final status.
    Rejected(u16),
    /// No final answer within `sip.ring_timeout`.
    NoAnswer,
    /// The destination never responded (Timer B).
    DestinationTimeout,
    /// The caller never ACKed our 2xx (RFC 6026 Timer L).
    NoAck,
    /// No route for the dialled number.
    NoRoute,
    /// The node was shutting down.
    Draining,
    /// No RTP from this side for `media.rtp_timeout_secs`.
    RtpTimeout(Side),
    /// The media plane could not serve the call (ports could not be bound).
    MediaFailed,
    /// The caller is on the block list: announcement, then hang-up.
    Blocked,
    /// The line's flow hung up (a `hangup` node; its cause is in the
    /// record's IVR segment).
    FlowHangup,
    /// A queue or transfer target refused or failed after the caller was
    /// answered (the status, or 408 for no answer / no response).
    DeliveryFailed(u16),
    /// The queue was full: treatment announcement, then hang-up.
    QueueFull,
    /// The caller waited the queue's `max_wait`: treatment, then hang-up.
    QueueTimeout,
}

/// A re-INVITE or other in-dialog request being relayed from one leg to
/// the other.
#[derive(Debug, Clone)]
pub struct Relay {
    /// The leg it came from.
    pub from: Side,
    /// Its server transaction on that leg.
    pub server: TsxId,
    /// Our client transaction on the other leg.
    pub client: TsxId,
    /// It is an INVITE (the ACK for its 2xx must be relayed too).
    pub invite: bool,
    /// Where the SDP offer of this exchange travels, if any.
    pub offer: OfferIn,
}

/// Where the offer of a relayed offer/answer exchange is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferIn {
    /// No SDP (INFO, MESSAGE, a bodiless re-INVITE so far).
    None,
    /// In the request: the answer comes in the 2xx.
    Request,
    /// In the 2xx to a bodiless re-INVITE: the answer comes in the ACK.
    Response,
}

/// The call's life, with the data each stage needs.
#[derive(Debug)]
pub enum CallState {
    /// B leg INVITE sent; waiting for its final answer.
    Calling {
        /// A leg INVITE server transaction.
        a_invite: TsxId,
        /// B leg INVITE client transaction.
        b_invite: TsxId,
        /// A provisional answer has been relayed (an early dialog exists).
        early: bool,
    },
    /// The caller cancelled or the ring timer fired: CANCEL sent to B,
    /// waiting for B's final answer (a 2xx race is ACKed and BYEd).
    Cancelling {
        /// B leg INVITE client transaction.
        b_invite: TsxId,
        /// Why.
        cause: EndCause,
    },
    /// The caller was answered by the gateway and runs a flow (the line's
    /// IVR, the survey, a block-list announcement); no B leg.
    Ivr,
    /// The caller waits in an ACD queue (music, comfort announcements);
    /// no B leg.
    Queued,
    /// The caller (answered by the gateway) is being put through: B leg
    /// INVITE sent, waiting for its final answer (an agent's phone rings
    /// when [`Call::agent`] is set).
    Dialling {
        /// B leg INVITE client transaction.
        b_invite: TsxId,
    },
    /// Answered: both dialogs confirmed (or the A side waits for its ACK).
    Confirmed {
        /// In-dialog requests being relayed.
        relays: Vec<Relay>,
    },
    /// BYE sent to one or both legs; waiting for the answers.
    Terminating {
        /// BYE transactions still open.
        byes: Vec<TsxId>,
        /// Why.
        cause: EndCause,
    },
}

/// One citizen call.
#[derive(Debug)]
pub struct Call {
    /// Handle.
    pub id: CallId,
    /// When the INVITE arrived.
    pub started: Instant,
    /// When it was answered.
    pub answered: Option<Instant>,
    /// Caller number (personal data).
    pub caller: Pii<String>,
    /// Dialled number, as normalised by the trunk's rules (what routed).
    pub dialled: String,
    /// The trunk it came in on.
    pub trunk: String,
    /// The target the B leg goes to (empty while a flow runs).
    pub target: String,
    /// The line called, when the number is a `[[lines]]` entry (else a
    /// `[[routes]]` number, put straight through).
    pub line: Option<crate::config::Line>,
    /// A leg dialog (exists from the first response we send with a tag).
    pub a: Dialog,
    /// The A leg INVITE while our 2xx waits for its ACK.
    pub a_ack_pending: Option<TsxId>,
    /// B leg: the INVITE we sent (for the dialog once it is answered);
    /// `None` until the call is put through.
    pub b_invite_req: Option<crate::sip::msg::Request>,
    /// B leg dialog once answered (early dialogs are not tracked: we relay
    /// provisional answers but send nothing in an early dialog).
    pub b: Option<Dialog>,
    /// Where the B leg goes, once known.
    pub b_peer: Option<Peer>,
    /// Our SDP offer for the B leg, made at arrival, sent when the call is
    /// put through.
    pub b_offer: Option<String>,
    /// The flow running on the caller's leg, if any.
    pub ivr: Option<Box<IvrRun>>,
    /// Tags set by flows and the line (topic, dialect, ...).
    pub tags: std::collections::BTreeMap<String, String>,
    /// How the conversation ended when a survey followed (the record's end).
    pub conversation_end: Option<EndCause>,
    /// Max-Forwards for the B leg (the caller's, less one, at most 70).
    pub max_forwards: u32,
    /// The ACD queue the call waits in or was answered from.
    pub queue: Option<crate::acd::QueueIx>,
    /// The agent whose phone rings with the call, or who took it.
    pub agent: Option<crate::acd::AgentIx>,
    /// A comfort announcement plays (music follows it).
    pub comfort: bool,
    /// When the call first entered an ACD queue.
    pub queued_at: Option<Instant>,
    /// The gateway's own call with an agent's phone (a feature code's
    /// confirmation), not a citizen call: no record, not counted.
    pub internal: bool,
    /// Life stage.
    pub state: CallState,
    /// The call record being built (sealed when the end is known).
    pub record: record::RecordBuilder,
    /// Ports and SDP of both legs.
    pub media: media::CallMedia,
}

/// What a flow on the caller's leg is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IvrPhase {
    /// The line's flow (or its closed-hours flow), before the call is put
    /// through.
    Line,
    /// The satisfaction survey after the agent hung up.
    Survey,
    /// The block-list announcement.
    Blocked,
    /// A queue's treatment (full, or the caller waited too long):
    /// announcement, then hang-up.
    Treatment,
    /// An agent's feature code: its confirmation, then hang-up.
    Feature,
}

/// A flow running on a call.
#[derive(Debug)]
pub struct IvrRun {
    /// What for.
    pub phase: IvrPhase,
    /// The walk through the flow.
    pub runner: crate::ivr::Runner,
    /// `Input::Started` was given (the caller's ACK came).
    pub started: bool,
}

impl Call {
    /// The dialog of one side, if established.
    pub fn dialog(&self, side: Side) -> Option<&Dialog> {
        match side {
            Side::A => Some(&self.a),
            Side::B => self.b.as_ref(),
        }
    }

    /// The dialog of one side, mutable.
    pub fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::A => Some(&mut self.a),
            Side::B => self.b.as_mut(),
        }
    }

    /// Whether the call was answered.
    pub fn is_answered(&self) -> bool {
        self.answered.is_some()
    }
}
