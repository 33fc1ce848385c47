//! Cognito adapter: implements [`UserDirectory`] with the Cognito user pools admin API.
//!
//! Each method is exactly one request, so the sync's rate limiter accounts for every call it
//! makes; pagination is left to the caller for the same reason (a page is a unit of quota).

use async_trait::async_trait;
use aws_sdk_cognitoidentityprovider::types as sdk;
use std::collections::BTreeMap;

use super::error::{from_sdk, Error, ErrorKind, Result, Service};
use super::time_conv::to_offset;
use crate::cognito::port::{
    Group, NewUser, Page, ReplicaRole, ReplicaStatus, User, UserDirectory, UserPool,
    UserPoolReplica, MAX_PAGE_SIZE,
};

/// Cognito user pools in one region, through the AWS SDK.
#[derive(Debug, Clone)]
pub struct CognitoDirectory {
    client: aws_sdk_cognitoidentityprovider::Client,
}

impl CognitoDirectory {
    pub(crate) fn new(client: aws_sdk_cognitoidentityprovider::Client) -> Self {
        Self { client }
    }
}

const SERVICE: Service = Service::Cognito;

#[async_trait]
impl UserDirectory for CognitoDirectory {
    async fn describe_pool(&self, pool_id: &str) -> Result<UserPool> {
        const OP: &str = "DescribeUserPool";
        let output = self
            .client
            .describe_user_pool()
            .user_pool_id(pool_id)
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        let pool = output
            .user_pool()
            .ok_or_else(|| Error::missing_field(SERVICE, OP, "UserPool"))?;
        Ok(UserPool {
            id: pool.id().unwrap_or(pool_id).to_owned(),
            name: pool.name().map(str::to_owned),
            arn: pool.arn().map(str::to_owned),
            estimated_number_of_users: u64::try_from(pool.estimated_number_of_users()).ok(),
            mutable_attributes: pool
                .schema_attributes()
                .iter()
                .filter(|a| a.mutable().unwrap_or(false))
                .filter_map(|a| a.name().map(str::to_owned))
                .collect(),
            username_attributes: pool
                .username_attributes()
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
            created_at: pool.creation_date().and_then(to_offset),
            last_modified_at: pool.last_modified_date().and_then(to_offset),
        })
    }

    async fn list_users(&self, pool_id: &str, page_token: Option<&str>) -> Result<Page<User>> {
        const OP: &str = "ListUsers";
        let output = self
            .client
            .list_users()
            .user_pool_id(pool_id)
            .limit(MAX_PAGE_SIZE)
            .set_pagination_token(page_token.map(str::to_owned))
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        Ok(Page {
            items: output.users().iter().map(from_sdk_user).collect(),
            next_token: non_empty(output.pagination_token()),
        })
    }

    async fn list_groups(&self, pool_id: &str, page_token: Option<&str>) -> Result<Page<Group>> {
        const OP: &str = "ListGroups";
        let output = self
            .client
            .list_groups()
            .user_pool_id(pool_id)
            .limit(MAX_PAGE_SIZE)
            .set_next_token(page_token.map(str::to_owned))
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        Ok(Page {
            items: output
                .groups()
                .iter()
                .map(|g| Group {
                    name: g.group_name().unwrap_or_default().to_owned(),
                    description: g.description().map(str::to_owned),
                    precedence: g.precedence(),
                    role_arn: g.role_arn().map(str::to_owned),
                })
                .collect(),
            next_token: non_empty(output.next_token()),
        })
    }

    async fn list_users_in_group(
        &self,
        pool_id: &str,
        group: &str,
        page_token: Option<&str>,
    ) -> Result<Page<User>> {
        const OP: &str = "ListUsersInGroup";
        let output = self
            .client
            .list_users_in_group()
            .user_pool_id(pool_id)
            .group_name(group)
            .limit(MAX_PAGE_SIZE)
            .set_next_token(page_token.map(str::to_owned))
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        Ok(Page {
            items: output.users().iter().map(from_sdk_user).collect(),
            next_token: non_empty(output.next_token()),
        })
    }

    async fn create_user(&self, pool_id: &str, user: &NewUser) -> Result<User> {
        const OP: &str = "AdminCreateUser";
        let output = self
            .client
            .admin_create_user()
            .user_pool_id(pool_id)
            .username(&user.username)
            .set_user_attributes(Some(to_sdk_attributes(OP, &user.attributes)?))
            .message_action(sdk::MessageActionType::Suppress)
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        output
            .user()
            .map(from_sdk_user)
            .ok_or_else(|| Error::missing_field(SERVICE, OP, "User"))
    }

    async fn update_user_attributes(
        &self,
        pool_id: &str,
        username: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<()> {
        const OP: &str = "AdminUpdateUserAttributes";
        self.client
            .admin_update_user_attributes()
            .user_pool_id(pool_id)
            .username(username)
            .set_user_attributes(Some(to_sdk_attributes(OP, attributes)?))
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        Ok(())
    }

    async fn enable_user(&self, pool_id: &str, username: &str) -> Result<()> {
        const OP: &str = "AdminEnableUser";
        self.client
            .admin_enable_user()
            .user_pool_id(pool_id)
            .username(username)
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        Ok(())
    }

    async fn disable_user(&self, pool_id: &str, username: &str) -> Result<()> {
        const OP: &str = "AdminDisableUser";
        self.client
            .admin_disable_user()
            .user_pool_id(pool_id)
            .username(username)
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        Ok(())
    }

    async fn delete_user(&self, pool_id: &str, username: &str) -> Result<()> {
        const OP: &str = "AdminDeleteUser";
        self.client
            .admin_delete_user()
            .user_pool_id(pool_id)
            .username(username)
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        Ok(())
    }

    async fn create_group(&self, pool_id: &str, group: &Group) -> Result<()> {
        const OP: &str = "CreateGroup";
        self.client
            .create_group()
            .user_pool_id(pool_id)
            .group_name(&group.name)
            .set_description(group.description.clone())
            .set_precedence(group.precedence)
            .set_role_arn(group.role_arn.clone())
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        Ok(())
    }

    async fn add_user_to_group(&self, pool_id: &str, username: &str, group: &str) -> Result<()> {
        const OP: &str = "AdminAddUserToGroup";
        self.client
            .admin_add_user_to_group()
            .user_pool_id(pool_id)
            .username(username)
            .group_name(group)
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        Ok(())
    }

    async fn remove_user_from_group(
        &self,
        pool_id: &str,
        username: &str,
        group: &str,
    ) -> Result<()> {
        const OP: &str = "AdminRemoveUserFromGroup";
        self.client
            .admin_remove_user_from_group()
            .user_pool_id(pool_id)
            .username(username)
            .group_name(group)
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        Ok(())
    }

    async fn list_user_pool_replicas(
        &self,
        pool_id: &str,
        page_token: Option<&str>,
    ) -> Result<Page<UserPoolReplica>> {
        const OP: &str = "ListUserPoolReplicas";
        let output = self
            .client
            .list_user_pool_replicas()
            .user_pool_id(pool_id)
            .set_next_token(page_token.map(str::to_owned))
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        Ok(Page {
            items: output
                .user_pool_replicas()
                .iter()
                .map(|r| UserPoolReplica {
                    region: r.region_name().map(str::to_owned),
                    status: r.status().map(|s| match s {
                        sdk::ReplicaStatusType::Creating => ReplicaStatus::Creating,
                        sdk::ReplicaStatusType::Inactive => ReplicaStatus::Inactive,
                        sdk::ReplicaStatusType::Active => ReplicaStatus::Active,
                        sdk::ReplicaStatusType::Deleting => ReplicaStatus::Deleting,
                        other => ReplicaStatus::Other(other.as_str().to_owned()),
                    }),
                    role: r.role().map(|role| match role {
                        sdk::ReplicaRoleType::Primary => ReplicaRole::Primary,
                        sdk::ReplicaRoleType::Secondary => ReplicaRole::Secondary,
                        other => ReplicaRole::Other(other.as_str().to_owned()),
                    }),
                    user_pool_arn: r.user_pool_arn().map(str::to_owned),
                })
                .collect(),
            next_token: non_empty(output.next_token()),
        })
    }
}

/// Cognito ends a listing with an absent token; some emulators send an empty one.
fn non_empty(token: Option<&str>) -> Option<String> {
    token.filter(|t| !t.is_empty()).map(str::to_owned)
}

fn from_sdk_user(user: &sdk::UserType) -> User {
    User {
        username: user.username().unwrap_or_default().to_owned(),
        attributes: user
            .attributes()
            .iter()
            .map(|a| {
                (
                    a.name().to_owned(),
                    a.value().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        enabled: user.enabled(),
        status: user.user_status().map(|s| s.as_str().to_owned()),
        created_at: user.user_create_date().and_then(to_offset),
        last_modified_at: user.user_last_modified_date().and_then(to_offset),
    }
}

fn to_sdk_attributes(
    operation: &str,
    attributes: &BTreeMap<String, String>,
) -> Result<Vec<sdk::AttributeType>> {
    attributes
        .iter()
        .map(|(name, value)| {
            sdk::AttributeType::builder()
                .name(name)
                .value(value)
                .build()
                .map_err(|e| Error::new(ErrorKind::Invalid, SERVICE, operation, e.to_string()))
        })
        .collect()
}
