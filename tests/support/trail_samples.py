"""CloudTrail records as AWS's documentation publishes them, for the tests that read records.

Sources, cited per record: the CloudTrail User Guide ("AWS Management Console sign-in events",
"CloudTrail userIdentity element", "CloudTrail log file examples", "CloudTrail record
contents") and the IAM User Guide ("Logging IAM and AWS STS API calls with AWS CloudTrail"), as
published in awsdocs/aws-cloudtrail-user-guide and awsdocs/iam-user-guide before their archiving.
"""
from __future__ import annotations

# CloudTrail User Guide, "AWS Management Console sign-in events", "IAM user, unsuccessful sign-in".
SIGN_IN_FAILURE = {
    "eventVersion": "1.05",
    "userIdentity": {"type": "IAMUser", "principalId": "AIDACKCEVSQ6C2EXAMPLE", "accountId": "111122223333",
                     "accessKeyId": "", "userName": "anaya"},
    "eventTime": "2022-11-10T16:24:34Z", "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
    "awsRegion": "us-east-1", "sourceIPAddress": "192.0.2.0",
    "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_6) AppleWebKit/537.36 (KHTML, like Gecko) "
                 "Chrome/67.0.3396.99 Safari/537.36",
    "errorMessage": "Failed authentication", "requestParameters": None, "responseElements": {"ConsoleLogin": "Failure"},
    "additionalEventData": {"LoginTo": "https://console.aws.amazon.com/console/home?state=hashArgs%23&isauthcode=true",
                            "MobileVersion": "No", "MFAUsed": "Yes"},
    "eventID": "d38ce1b3-4575-4cb8-a632-611b8243bfc3", "eventType": "AwsConsoleSignIn",
    "recipientAccountId": "111122223333"}
# The same guide, "IAM user, successful sign-in without MFA".
SIGN_IN_SUCCESS = {
    "eventVersion": "1.05",
    "userIdentity": {"type": "IAMUser", "principalId": "AIDACKCEVSQ6C2EXAMPLE",
                     "arn": "arn:aws:iam::111122223333:user/anaya", "accountId": "111122223333", "userName": "anaya"},
    "eventTime": "2022-11-10T16:24:34Z", "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
    "awsRegion": "us-east-2", "sourceIPAddress": "192.0.2.0",
    "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.12; rv:62.0) Gecko/20100101 Firefox/62.0",
    "requestParameters": None, "responseElements": {"ConsoleLogin": "Success"},
    "additionalEventData": {"MobileVersion": "No", "LoginTo": "https://console.aws.amazon.com/sns", "MFAUsed": "No"},
    "eventID": "3fcfb182-98f8-4744-bd45-10a395ab61cb", "eventType": "AwsConsoleSignIn"}
# IAM User Guide, "Example sign-in failure event caused by incorrect user name" (its eventType is
# spelled AwsConsoleSignin there).
HIDDEN_USER = {
    "eventVersion": "1.05",
    "userIdentity": {"type": "IAMUser", "accountId": "123456789012", "accessKeyId": "",
                     "userName": "HIDDEN_DUE_TO_SECURITY_REASONS"},
    "eventTime": "2015-03-31T22:20:42Z", "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
    "awsRegion": "us-east-2", "sourceIPAddress": "192.0.2.101",
    "userAgent": "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:24.0) Gecko/20100101 Firefox/24.0",
    "errorMessage": "No username found in supplied account", "requestParameters": None,
    "responseElements": {"ConsoleLogin": "Failure"},
    "additionalEventData": {"LoginTo": "https://console.aws.amazon.com/console/home?state=hashArgs%23&isauthcode=true",
                            "MobileVersion": "No", "MFAUsed": "No"},
    "eventID": "a7654656-0417-45c6-9386-ea8231385051", "eventType": "AwsConsoleSignin",
    "recipientAccountId": "123456789012"}
# IAM User Guide, "Example cross-account AWS STS API events in CloudTrail log files" (the caller's side).
ASSUME_ROLE = {
    "eventVersion": "1.05",
    "userIdentity": {"type": "IAMUser", "principalId": "AIDAQRSTUVWXYZEXAMPLE",
                     "arn": "arn:aws:iam::777788889999:user/JohnDoe", "accountId": "777788889999",
                     "accessKeyId": "AKIAQRSTUVWXYZEXAMPLE", "userName": "JohnDoe"},
    "eventTime": "2014-07-18T15:07:39Z", "eventSource": "sts.amazonaws.com", "eventName": "AssumeRole",
    "awsRegion": "us-east-2", "sourceIPAddress": "192.0.2.101",
    "userAgent": "aws-cli/1.11.10 Python/2.7.8 Linux/3.2.45-0.6.wd.865.49.315.metal1.x86_64 botocore/1.4.67",
    "requestParameters": {"roleArn": "arn:aws:iam::111122223333:role/EC2-dev", "roleSessionName": "JohnDoe-EC2-dev",
                          "sourceIdentity": "JohnDoe", "serialNumber": "arn:aws:iam::777788889999:mfa"},
    "responseElements": {"credentials": {"sessionToken": "<encoded session token blob>",
                                         "accessKeyId": "AKIAQRSTUVWXYZEXAMPLE", "expiration": "Jul 18, 2023, 4:07:39 PM"},
                         "assumedRoleUser": {"assumedRoleId": "AIDAQRSTUVWXYZEXAMPLE:JohnDoe-EC2-dev",
                                             "arn": "arn:aws:sts::111122223333:assumed-role/EC2-dev/JohnDoe-EC2-dev"},
                         "sourceIdentity": "JohnDoe"},
    "requestID": "4EXAMPLE-0e8d-11e4-96e4-e55c0EXAMPLE", "eventID": "dEXAMPLE-ac7f-466c-a608-4ac8dEXAMPLE",
    "eventType": "AwsApiCall", "recipientAccountId": "111122223333"}
# CloudTrail User Guide, "CloudTrail userIdentity element", "userIdentity with temporary security
# credentials" (creationDate in ISO 8601 basic notation), in a record of a call.
SESSION_CALL = {
    "userIdentity": {"type": "AssumedRole", "principalId": "AROAIDPPEZS35WEXAMPLE:AssumedRoleSessionName",
                     "arn": "arn:aws:sts::123456789012:assumed-role/RoleToBeAssumed/MySessionName",
                     "accountId": "123456789012", "accessKeyId": "",
                     "sessionContext": {"attributes": {"mfaAuthenticated": "false", "creationDate": "20131102T010628Z"},
                                        "sessionIssuer": {"type": "Role", "principalId": "AROAIDPPEZS35WEXAMPLE",
                                                          "arn": "arn:aws:iam::123456789012:role/RoleToBeAssumed",
                                                          "accountId": "123456789012",
                                                          "userName": "RoleToBeAssumed"}}},
    "eventTime": "2013-11-02T01:10:00Z", "eventSource": "s3.amazonaws.com", "eventName": "ListBuckets",
    "sourceIPAddress": "192.0.2.44", "userAgent": "aws-cli/1.3.2", "eventID": "session-call-1"}
# CloudTrail User Guide, "CloudTrail log file examples", "Error code and message log example".
UPDATE_TRAIL_ERROR = {
    "eventVersion": "1.04",
    "userIdentity": {"type": "IAMUser", "principalId": "AIDAJDPLRKLG7UEXAMPLE",
                     "arn": "arn:aws:iam::123456789012:user/Mary_Major", "accountId": "123456789012",
                     "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "userName": "Mary_Major"},
    "eventTime": "2016-07-14T19:15:45Z", "eventSource": "cloudtrail.amazonaws.com", "eventName": "UpdateTrail",
    "awsRegion": "us-east-2", "sourceIPAddress": "205.251.233.182", "userAgent": "aws-cli/1.10.32",
    "errorCode": "TrailNotFoundException", "errorMessage": "Unknown trail: myTrail2 for the user: 123456789012",
    "requestParameters": {"name": "myTrail2"}, "responseElements": None,
    "requestID": "5d40662a-49f7-11e6-97e4-d9cb6ff7d6a3", "eventID": "b7d4398e-b2f0-4faa-9c76-e2d316a8d67f",
    "eventType": "AwsApiCall", "recipientAccountId": "123456789012"}
# CloudTrail User Guide, "CloudTrail record contents" (an AWS service event: invokedBy, no caller).
KMS_ROTATION = {
    "eventVersion": "1.08", "userIdentity": {"accountId": "111122223333", "invokedBy": "AWS Internal"},
    "eventTime": "2021-01-14T01:41:59Z", "eventSource": "kms.amazonaws.com", "eventName": "RotateKey",
    "awsRegion": "us-west-2", "sourceIPAddress": "AWS Internal", "userAgent": "AWS Internal",
    "requestParameters": None, "responseElements": None, "eventID": "a24b3967-ddad-417f-9b22-2332b918db06",
    "readOnly": False, "eventType": "AwsServiceEvent", "recipientAccountId": "111122223333"}
