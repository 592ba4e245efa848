//! The clouds keyfleet manages keys in, and what every layer asks of "a cloud": its stored name, the name its
//! views show, and the records of a new job or synchronization job. A third cloud is one more variant here.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::model::{
    AZURE_CLOUD_NAME, CLOUD_AWS, CLOUD_AZURE, JobParams, JobRecord, JobStatus, Operation, SyncJobRecord,
};
use crate::{JobId, SyncJobId, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cloud {
    Aws,
    Azure,
}

impl Cloud {
    pub const ALL: [Cloud; 2] = [Cloud::Aws, Cloud::Azure];

    /// The `cloud` column of jobs and sync jobs: [`CLOUD_AWS`] or [`CLOUD_AZURE`].
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Aws => CLOUD_AWS,
            Cloud::Azure => CLOUD_AZURE,
        }
    }

    /// The cloud name CCKM's views show (`cloud` of a job): `aws` or [`AZURE_CLOUD_NAME`].
    pub fn display(self) -> &'static str {
        match self {
            Cloud::Aws => CLOUD_AWS,
            Cloud::Azure => AZURE_CLOUD_NAME,
        }
    }

    /// By stored name.
    pub fn parse(name: &str) -> Option<Cloud> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether a record's `cloud` column is this cloud.
    pub fn is(self, stored: &str) -> bool {
        self.name() == stored
    }

    /// The operations bulk jobs of this cloud run.
    pub fn operations(self) -> &'static [Operation] {
        match self {
            Cloud::Aws => &Operation::AWS,
            Cloud::Azure => &Operation::AZURE,
        }
    }

    /// The cloud an operation acts in.
    pub fn of(op: Operation) -> Cloud {
        if Cloud::Azure.operations().contains(&op) { Cloud::Azure } else { Cloud::Aws }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl JobRecord {
    /// A new bulk job of `cloud`, in progress, with no items counted yet.
    pub fn started(
        cloud: Cloud,
        operation: Operation,
        params: JobParams,
        created_by: UserId,
        at: DateTime<Utc>,
    ) -> Self {
        JobRecord {
            id: JobId::new(),
            cloud: cloud.name().into(),
            operation,
            params,
            status: JobStatus::InProgress,
            abort: false,
            created_by,
            total: 0,
            succeeded: 0,
            failed: 0,
            skipped: 0,
            created_at: at,
            updated_at: at,
            completed_at: None,
            plan: None,
            plan_expires_at: None,
            stop_reason: None,
        }
    }
}

impl SyncJobRecord {
    /// A new synchronization job of `cloud`, in progress; the caller fills in what it synchronizes.
    pub fn started(cloud: Cloud, synchronize_all: bool, created_by: UserId, at: DateTime<Utc>) -> Self {
        SyncJobRecord {
            id: SyncJobId::new(),
            cloud: cloud.name().into(),
            kms: vec![],
            regions: vec![],
            vaults: vec![],
            take_cloud_key_backup: false,
            synchronize_all,
            status: JobStatus::InProgress,
            abort: false,
            detailed_status: BTreeMap::new(),
            created_by,
            created_at: at,
            updated_at: at,
            completed_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_views_show_azure_cloud() {
        for c in Cloud::ALL {
            assert_eq!(Cloud::parse(c.name()), Some(c));
            assert!(c.operations().iter().all(|op| op.cloud() == c.name() && Cloud::of(*op) == c));
        }
        assert_eq!(Cloud::Azure.display(), "AzureCloud");
        assert_eq!(Cloud::Aws.display(), "aws");
        assert_eq!(Cloud::parse("gcp"), None);
    }
}
