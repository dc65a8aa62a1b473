// The page under test for the older React inbox (@engagespot/react-component 1.x and 2.x, on
// @engagespot/core 1.x), unchanged, pointed at Herald. build.mjs bundles it once per version,
// mapping 'legacy-react-component' to that version's npm alias.
// Settings come from the query string: ?baseURL=<herald root>&apiKey=…&userId=…
import React from 'react';
import { createRoot } from 'react-dom/client';
import { Engagespot } from 'legacy-react-component';

const params = new URLSearchParams(window.location.search);

createRoot(document.getElementById('root')).render(
  <Engagespot
    apiKey={params.get('apiKey')}
    userId={params.get('userId')}
    baseURL={params.get('baseURL')}
    disableNotificationChime
  />,
);
