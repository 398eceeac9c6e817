//! The call directory's interface.

use uuid::Uuid;

use crate::core::admission::Answer;
use crate::core::call::CallRecord;

/// Where a call was found, for the token that asked.
pub enum Found {
    /// On this node (placed by this token, or from fs_cli).
    Here(Box<CallRecord>),
    /// On another node, which answered the request itself.
    Elsewhere(Answer),
    /// On another node, which cannot be asked now.
    Unreachable(String),
    /// Nowhere this token may see.
    Nowhere,
}

/// Finds calls, wherever they live.
pub trait CallDirectory: Send + Sync {
    /// `call_uuid` as `token` may see it. A call this node does not have is
    /// asked of its owner (`method` on `/api/pbx/calls/{uuid}`, e.g. `GET`
    /// or `DELETE`) when `may_forward`; a request that was itself forwarded
    /// is never forwarded again.
    fn find(&self, call_uuid: Uuid, token: &str, method: &str, may_forward: bool) -> Found;

    /// The token a request forwarded by another node was made for, when it
    /// carries the node-to-node credential.
    fn forwarded_token(&self, secret: Option<&str>, token: Option<&str>) -> Option<String> {
        let _ = (secret, token);
        None
    }

    /// Whether a lookup may go over the network (so it must not run on an
    /// async worker).
    fn remote(&self) -> bool {
        false
    }
}
