//! Bucket operations: a bucket is a layer with S3's key rules; all
//! buckets are in the server's one region.

use partstore::{KeyRules, LayerConfig};
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};

use crate::errors::err;
use crate::list;
use crate::request::ts;
use crate::s3::{owner, EngineResult, PartstoreS3};

pub async fn create_bucket(
    s3: &PartstoreS3,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let i = req.input;
    let asked = i
        .create_bucket_configuration
        .and_then(|c| c.location_constraint)
        .map(|l| l.as_str().to_owned())
        .filter(|l| !l.is_empty());
    if let Some(l) = asked.filter(|l| *l != s3.region) {
        return Err(err(
            S3ErrorCode::InvalidLocationConstraint,
            format!(
                "this server's buckets are in \"{}\", not \"{l}\"",
                s3.region
            ),
        ));
    }
    let bucket = i.bucket;
    let location = format!("/{bucket}");
    s3.blocking(move |s| {
        s.create_layer(&bucket, LayerConfig::default().key_rules(KeyRules::Utf8))
            .s3()
    })
    .await?;
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(location),
    }))
}

pub async fn delete_bucket(
    s3: &PartstoreS3,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let bucket = req.input.bucket;
    s3.blocking(move |s| s.delete_layer(&bucket).s3()).await?;
    Ok(S3Response::new(DeleteBucketOutput::default()))
}

pub async fn list_buckets(
    s3: &PartstoreS3,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let i = req.input;
    let max = match i.max_buckets {
        None => usize::MAX,
        Some(n) if (1..=10_000).contains(&n) => n as usize,
        Some(n) => {
            return Err(err(
                S3ErrorCode::InvalidArgument,
                format!("max-buckets {n} is outside 1..=10000"),
            ))
        }
    };
    let after = i
        .continuation_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(list::marker_of)
        .transpose()?;
    let prefix = i.prefix.clone().unwrap_or_default();
    let (infos, more) = s3
        .blocking(move |s| {
            let mut ids: Vec<String> = s
                .list_layers()
                .into_iter()
                .map(|(id, _)| id)
                .filter(|id| id.starts_with(&prefix))
                .filter(|id| after.as_deref().is_none_or(|a| id.as_str() > a))
                .collect();
            ids.sort();
            let more = ids.len() > max;
            ids.truncate(max);
            // A bucket deleted meanwhile is left out.
            let infos: Vec<_> = ids.iter().filter_map(|id| s.layer_info(id).ok()).collect();
            Ok((infos, more))
        })
        .await?;
    let next = more
        .then(|| infos.last().map(|l| list::token(&l.id)))
        .flatten();
    let buckets = infos
        .into_iter()
        .map(|l| Bucket {
            name: Some(l.id),
            // Layers made before creation times were kept: the epoch.
            creation_date: Some(ts(l.created.unwrap_or(std::time::UNIX_EPOCH))),
            bucket_region: Some(s3.region.clone()),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(owner()),
        continuation_token: next,
        prefix: i.prefix,
    }))
}

pub async fn head_bucket(
    s3: &PartstoreS3,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    s3.require_bucket(req.input.bucket).await?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(s3.region.clone()),
        ..Default::default()
    }))
}

pub async fn get_bucket_location(
    s3: &PartstoreS3,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    s3.require_bucket(req.input.bucket).await?;
    // S3 answers us-east-1 as no constraint.
    let location =
        (s3.region != "us-east-1").then(|| BucketLocationConstraint::from(s3.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint: location,
    }))
}
