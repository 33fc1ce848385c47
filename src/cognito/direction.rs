//! The direction of the Cognito sync follows the active region: the sync copies the configured
//! hot pool to the cold one, so it is paused while the configured hot region is not the active
//! one — after a failover, copying would overwrite the pool now in use with the lost region's.

use super::monitor::CognitoHandle;
use crate::shutdown::StopSignal;
use crate::topology::ActiveRegion;

/// Pauses and resumes the sync as the active region changes, until `stop` fires.
pub async fn follow_active_region(
    cognito: CognitoHandle,
    hot_region: String,
    active: ActiveRegion,
    stop: StopSignal,
) {
    active
        .follow(stop, |state| {
            let paused = state.active != hot_region;
            if paused && !cognito.is_paused() {
                tracing::info!(active = %state.active, "Cognito sync paused: the configured hot region is not active (it copies hot to cold)");
            }
            cognito.set_paused(paused);
        })
        .await;
}
