//! The S3 operations on a `partstore::Store`: bucket = layer (with S3's key
//! rules, `KeyRules::Utf8`).
//!
//! Every engine call runs on a blocking thread (`spawn_blocking`): the
//! engine is synchronous and may fsync. Object ETags are the engine's etag
//! and part ETags are the engine's part ids, both quoted, so the
//! (PartNumber, ETag) list of CompleteMultipartUpload is exactly the
//! engine's `PartRef { number, id }` list. The operations live by area in
//! `buckets`, `objects` and `multipart`; headers kept with objects in
//! `attrs`, listings in `list`, request parsing in `request`, the complete
//! checks in `complete`.

use std::sync::Arc;

use partstore::Store;
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result, S3};

use crate::errors::{self, err};
use crate::{buckets, multipart, objects};

/// Objects and buckets here have one owner: the server's.
pub const OWNER: &str = "partstore";

/// Set (by `s3_server.rs`, never by a client) on a PUT whose body has no
/// length: it is read to its end.
pub const UNKNOWN_LENGTH: &str = "x-partstore-unknown-length";

/// The S3 service: a store, and the one region its buckets are in.
#[derive(Clone)]
pub struct PartstoreS3 {
    pub store: Arc<Store>,
    pub region: String,
}

impl PartstoreS3 {
    pub fn new(store: Arc<Store>, region: String) -> PartstoreS3 {
        PartstoreS3 { store, region }
    }

    /// Runs `f` on a blocking thread.
    pub async fn blocking<T, F>(&self, f: F) -> S3Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> S3Result<T> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| err(S3ErrorCode::InternalError, format!("worker failed: {e}")))?
    }

    /// NoSuchBucket unless the bucket (layer) exists.
    pub async fn require_bucket(&self, bucket: String) -> S3Result<()> {
        self.blocking(move |s| s.layer_info(&bucket).map(|_| ()).s3())
            .await
    }
}

/// `partstore::Result` to `S3Result`.
pub trait EngineResult<T> {
    fn s3(self) -> S3Result<T>;
}

impl<T> EngineResult<T> for partstore::Result<T> {
    fn s3(self) -> S3Result<T> {
        self.map_err(|e| errors::s3(&e))
    }
}

pub fn owner() -> Owner {
    Owner {
        id: Some(OWNER.to_owned()),
        display_name: Some(OWNER.to_owned()),
    }
}

#[async_trait::async_trait]
impl S3 for PartstoreS3 {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        buckets::create_bucket(self, req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        buckets::delete_bucket(self, req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        buckets::list_buckets(self, req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        buckets::head_bucket(self, req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        buckets::get_bucket_location(self, req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        objects::put_object(self, req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        objects::get_object(self, req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        objects::head_object(self, req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        objects::delete_object(self, req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        objects::delete_objects(self, req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        objects::copy_object(self, req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        objects::list_objects(self, req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        objects::list_objects_v2(self, req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create_multipart_upload(self, req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(self, req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(self, req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_multipart_uploads(self, req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete_multipart_upload(self, req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort_multipart_upload(self, req).await
    }
}
