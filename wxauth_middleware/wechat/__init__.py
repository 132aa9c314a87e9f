"""WeChat's API as pure flows (`api`), the account's own credentials kept single-flight
(`credentials`), and what WeChat's errcodes mean for a site (`errcodes`)."""
