"""The JS-SDK: the signing endpoint (`endpoint`) and the one-tag script it serves (`jssdk.js`)."""
