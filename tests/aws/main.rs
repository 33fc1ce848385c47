//! The AWS adapters against the test bed (moto and failoverd's extension, behind the
//! fault-injecting proxy): each port of `src/aws`, retries and error classification, the lab
//! world, and the probes that read AWS. One module per subject.

#[path = "../support/mod.rs"]
mod support;

mod aws_backup;
mod aws_cloudwatch;
mod aws_cognito;
mod aws_lab_world;
mod aws_rds;
mod aws_retries;
mod aws_route53;
mod health_aws;
