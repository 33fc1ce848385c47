//! The direction of the Cognito sync follows the active region: the active region's pool is the
//! source. After a failover the pool in use is the standby's, and copying the lost region's pool
//! over it would undo every sign-up and change made since; copying it back instead brings the
//! original pool up to date for the failback.

use super::monitor::CognitoHandle;
use crate::shutdown::StopSignal;
use crate::topology::ActiveRegion;

/// Points the sync at the active region as it changes, until `stop` fires.
pub async fn follow_active_region(cognito: CognitoHandle, active: ActiveRegion, stop: StopSignal) {
    active
        .follow(stop, |state| {
            if let Err(e) = cognito.set_source(&state.active) {
                tracing::error!(error = %e, "Cognito sync direction not changed");
            }
        })
        .await;
}
