//! The Cognito component of the observed topology: the region the sync copies users from. It
//! must be the active region — copying from the other one would overwrite the pool in use.
//!
//! Read from the running component ([`CognitoHandle::source_region`]), not from Cognito: the
//! direction is failoverd's own decision. A paused sync copies in neither direction and says no
//! region ([`Says::Unknown`], not drift: the pool in use is not being overwritten). In
//! native_replica mode failoverd copies nothing, so there is no component to observe.

use async_trait::async_trait;

use super::monitor::CognitoHandle;
use crate::config::CognitoMode;
use crate::topology::{ObservedComponent, Reading, Says, COMPONENT_COGNITO};

pub struct SyncDirectionObservation {
    handle: CognitoHandle,
}

impl SyncDirectionObservation {
    /// `None` in native_replica mode.
    pub fn new(handle: CognitoHandle) -> Option<Self> {
        (handle.mode() == CognitoMode::Sync).then_some(Self { handle })
    }
}

#[async_trait]
impl ObservedComponent for SyncDirectionObservation {
    fn component(&self) -> String {
        COMPONENT_COGNITO.to_owned()
    }

    async fn read(&self) -> Result<Reading, String> {
        let [from, to] = self.handle.pools();
        Ok(match self.handle.source_region() {
            Some(source) => {
                let target = self.handle.regions().other(&source).unwrap_or_default();
                Reading {
                    detail: format!("users are copied from {source} ({from}) to {target} ({to})"),
                    says: Says::Region(source),
                }
            }
            None => Reading {
                says: Says::Unknown(
                    "the sync is paused: users are copied in neither direction".into(),
                ),
                detail: format!("pools {from} and {to}"),
            },
        })
    }
}
